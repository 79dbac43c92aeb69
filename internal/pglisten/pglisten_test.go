package pglisten

import "testing"

func TestWithApplicationName(t *testing.T) {
	t.Parallel()
	for dsn, want := range map[string]string{
		"postgres://u@127.0.0.1:5432/shop?sslmode=disable":                        "postgres://u@127.0.0.1:5432/shop?application_name=shopd-x&sslmode=disable",
		"postgres://u@127.0.0.1:5432/shop?application_name=other&sslmode=disable": "postgres://u@127.0.0.1:5432/shop?application_name=shopd-x&sslmode=disable",
		"host=127.0.0.1 dbname=shop":                                              "host=127.0.0.1 dbname=shop application_name=shopd-x",
	} {
		if got := withApplicationName(dsn, "shopd-x"); got != want {
			t.Errorf("withApplicationName(%q) = %q, want %q", dsn, got, want)
		}
	}
}
