package handlers

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// TestAttackPanickingCatalogReadAnswers500: a catalog read whose handler
// panics is answered as every other panic is, a 500 problem. The caching
// middleware holds the answer back in a buffer while the handler runs;
// a panic skipped putting the connection's writer back, so Recover's 500
// went into the buffer and the client got an empty 200.
func TestAttackPanickingCatalogReadAnswers500(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.DiscardHandler))
	e.Use(middleware.Recover())
	e.Use(catalogCaching(nil, func(now time.Time) time.Time { return now }))
	e.GET("/v1/products", func(echo.Context) error { panic("the store broke") })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/products", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get(echo.HeaderContentType) != "application/problem+json" {
		t.Fatalf("a panicking catalog read: %d %q %q", rec.Code, rec.Header().Get(echo.HeaderContentType), rec.Body)
	}
}
