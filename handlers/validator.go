package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
	echomw "github.com/oapi-codegen/echo-middleware"
)

// specValidator validates requests against the spec as echo-middleware's
// OapiRequestValidator does, minus the per-request work it can do once:
// Echo has already routed the request, so the spec operation is looked up
// by Echo's route (method and path pattern) in a table built at start-up,
// instead of matching the URL against every path's regular expression
// again (gorillamux), and the validation options are built once. A
// request Echo did not route to an operation goes through gorillamux, as
// before, for the same 404 and 405 answers.
type specValidator struct {
	routes   map[string]*routers.Route // method + " " + Echo path
	fallback routers.Router
	options  *openapi3filter.Options
	multi    func(openapi3.MultiError) *echo.HTTPError
	skip     func(echo.Context) bool
}

func newSpecValidator(spec *openapi3.T, options openapi3filter.Options, multi func(openapi3.MultiError) *echo.HTTPError, skip func(echo.Context) bool) (*specValidator, error) {
	fallback, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("spec router: %w", err)
	}
	v := &specValidator{routes: map[string]*routers.Route{}, fallback: fallback, options: &options, multi: multi, skip: skip}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			v.routes[method+" "+echoPath(path)] = &routers.Route{Spec: spec, Path: path, PathItem: item, Method: method, Operation: op}
		}
	}
	return v, nil
}

// withoutBodies is the same validator (one table) that checks a request's
// security, path and query but leaves its body to the handler: for the
// uploads, which the handler reads as they arrive (streamedBodies).
func (v *specValidator) withoutBodies() *specValidator {
	c := *v
	opts := *v.options
	opts.ExcludeRequestBody = true
	c.options = &opts
	return &c
}

// echoPath is a spec path as Echo registers it: {id} becomes :id.
func echoPath(specPath string) string {
	parts := strings.Split(specPath, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			parts[i] = ":" + part[1:len(part)-1]
		}
	}
	return strings.Join(parts, "/")
}

func (v *specValidator) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if v.skip(c) {
			return next(c)
		}
		if err := v.validate(c); err != nil {
			return err
		}
		return next(c)
	}
}

func (v *specValidator) validate(c echo.Context) *echo.HTTPError {
	req := c.Request()
	route, params := v.routes[req.Method+" "+c.Path()], map[string]string{}
	if route != nil {
		for i, name := range c.ParamNames() {
			value := c.ParamValues()[i]
			if unescaped, err := url.PathUnescape(value); err == nil {
				value = unescaped
			}
			params[name] = value
		}
	} else {
		var err error
		if route, params, err = v.fallback.FindRoute(req); err != nil {
			var re *routers.RouteError
			switch {
			case errors.Is(err, routers.ErrMethodNotAllowed):
				return echo.NewHTTPError(http.StatusMethodNotAllowed)
			case errors.As(err, &re):
				return echo.NewHTTPError(http.StatusNotFound, re.Reason)
			}
			return echo.NewHTTPError(http.StatusInternalServerError, "error validating route: "+err.Error())
		}
		for k, p := range params {
			if unescaped, err := url.PathUnescape(p); err == nil {
				params[k] = unescaped
			}
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: v.options}
	// The authentication function finds the Echo context here.
	ctx := context.WithValue(context.Background(), echomw.EchoContextKey, c) //nolint:staticcheck // the key echo-middleware reads
	err := openapi3filter.ValidateRequest(ctx, in)
	if err == nil {
		return nil
	}
	var me openapi3.MultiError
	if errors.As(err, &me) {
		return v.multi(me)
	}
	var reqErr *openapi3filter.RequestError
	var secErr *openapi3filter.SecurityRequirementsError
	switch {
	case errors.As(err, &reqErr):
		return &echo.HTTPError{Code: http.StatusBadRequest, Message: strings.SplitN(reqErr.Error(), "\n", 2)[0], Internal: err}
	case errors.As(err, &secErr):
		for _, e := range secErr.Errors {
			var he *echo.HTTPError
			if errors.As(e, &he) {
				return he
			}
		}
		return &echo.HTTPError{Code: http.StatusForbidden, Message: secErr.Error(), Internal: err}
	}
	return &echo.HTTPError{Code: http.StatusInternalServerError, Message: fmt.Sprintf("error validating request: %s", err), Internal: err}
}
