package orders_test

import (
	"testing"

	"github.com/shopd/shopd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
