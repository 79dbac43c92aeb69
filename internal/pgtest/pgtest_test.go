package pgtest

import (
	"database/sql"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewDBIsolated proves each NewDB call gets its own database with the
// schema applied: a row written to one is absent from the other.
func TestNewDBIsolated(t *testing.T) {
	t.Parallel()
	a, b := NewDB(t), NewDB(t)

	var nameA, nameB string
	if err := a.Get(&nameA, "SELECT current_database()"); err != nil {
		t.Fatal(err)
	}
	if err := b.Get(&nameB, "SELECT current_database()"); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both databases are %s", nameA)
	}

	if _, err := a.Exec(`INSERT INTO products (sku, name, price_cents, stock) VALUES ('SKU-1', 'Mug', 1200, 3)`); err != nil {
		t.Fatalf("insert into first database: %v", err)
	}
	var inA, inB int
	if err := a.Get(&inA, "SELECT count(*) FROM products"); err != nil {
		t.Fatal(err)
	}
	if err := b.Get(&inB, "SELECT count(*) FROM products"); err != nil {
		t.Fatalf("products table in second database: %v", err)
	}
	if inA != 1 || inB != 0 {
		t.Fatalf("products: first database has %d, second %d; want 1 and 0", inA, inB)
	}
}

// TestNewURL checks the URL form reaches a migrated database, including the
// pg_trgm index the product search relies on.
func TestNewURL(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var index string
	err = db.QueryRow(`SELECT indexname FROM pg_indexes WHERE indexname = 'products_search_idx'`).Scan(&index)
	if err != nil {
		t.Fatalf("search index: %v", err)
	}
}

func TestConfigFromURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres:@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgresql://localhost/shop", "postgres://postgres:@localhost:5432/shop?sslmode=disable"},
		{"postgres://u:p%40ss@[::1]:6543/db?sslmode=require&application_name=t", "postgres://u:p%40ss@[::1]:6543/db?application_name=t&sslmode=require"},
	} {
		conf, err := configFromURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := conf.URL(); got != tc.want {
			t.Errorf("%s: URL() = %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := configFromURL("host=localhost dbname=x"); err == nil {
		t.Error("key=value form accepted")
	}
}
