package handlers

import (
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/shopd/shopd/gen"
)

// TestValidatorKnowsEveryEchoRoute: the validator finds each operation by
// the route Echo registered for it, so every route of the generated
// server must be in its table, under the operation of the same method and
// path; none may fall through to the slow path.
func TestValidatorKnowsEveryEchoRoute(t *testing.T) {
	t.Parallel()
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	v, err := newSpecValidator(spec, openapi3filter.Options{}, func(openapi3.MultiError) *echo.HTTPError { return nil }, func(echo.Context) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	gen.RegisterHandlers(e, gen.NewStrictHandler(&Server{}, nil))
	seen := 0
	for _, r := range e.Routes() {
		route := v.routes[r.Method+" "+r.Path]
		if route == nil {
			t.Errorf("%s %s: no spec operation in the validator's table", r.Method, r.Path)
			continue
		}
		if echoPath(route.Path) != r.Path || route.Method != r.Method {
			t.Errorf("%s %s: table has %s %s", r.Method, r.Path, route.Method, route.Path)
		}
		seen++
	}
	// The webhook and the two streams are in the spec but served as plain
	// routes, outside the validator.
	want := len(v.routes)
	for _, plain := range []string{"POST " + webhookPath, "GET " + adminEventsRoute, "GET " + orderStreamRoute} {
		if v.routes[plain] == nil {
			t.Errorf("%s: not in the validator's table", plain)
		}
		want--
	}
	if seen != want || seen == 0 {
		t.Errorf("Echo has %d spec routes, the validator's table %d", seen, want)
	}
}
