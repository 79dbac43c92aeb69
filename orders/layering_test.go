package orders_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoHTTPBelowHandlers: the money path and the store speak shopd errors
// and their own outcomes; HTTP statuses and bodies belong to handlers.
func TestNoHTTPBelowHandlers(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{".", filepath.Join("..", "store")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); path == "net/http" || strings.HasPrefix(path, "github.com/labstack/echo") {
					t.Errorf("%s imports %s", f, path)
				}
			}
		}
	}
}
