package auth

import (
	"context"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	echomw "github.com/oapi-codegen/echo-middleware"
)

// echoClaimsKey is where Authenticate leaves the claims on the Echo context.
const echoClaimsKey = "shopd.claims"

// Authenticate is the OpenAPI validator's AuthenticationFunc for the
// bearerAuth scheme: it verifies the token (401 when missing or bad) and,
// when the operation names a role as its scope, checks it (403). The claims
// are left on the Echo context; ClaimsMiddleware moves them into the
// request's context for the handlers.
func (t *Tokens) Authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return echo.NewHTTPError(http.StatusUnauthorized, "A bearer token is required.")
	}
	claims, err := t.Verify(strings.TrimSpace(token))
	if err != nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "The bearer token is not valid.")
	}
	for _, role := range in.Scopes {
		if claims.Role != role {
			return echo.NewHTTPError(http.StatusForbidden, "This operation needs the "+role+" role.")
		}
	}
	if ec := echomw.GetEchoContext(ctx); ec != nil {
		ec.Set(echoClaimsKey, claims)
	}
	return nil
}

// ClaimsMiddleware runs after the validator and puts the verified claims
// into the request context, where the strict handlers can see them.
func ClaimsMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if claims, ok := c.Get(echoClaimsKey).(Claims); ok {
			req := c.Request()
			c.SetRequest(req.WithContext(WithClaims(req.Context(), claims)))
		}
		return next(c)
	}
}
