package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/shopd/shopd"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	shopd.EInvalid:           http.StatusBadRequest,
	shopd.EUnauthorized:      http.StatusUnauthorized,
	shopd.EForbidden:         http.StatusForbidden,
	shopd.ENotFound:          http.StatusNotFound,
	shopd.EConflict:          http.StatusConflict,
	shopd.EInsufficientStock: http.StatusConflict,
	shopd.EDuplicate:         http.StatusConflict,
	shopd.EInvalidTransition: http.StatusConflict,
	shopd.EInFlight:          http.StatusConflict,
	shopd.EPaymentRefused:    http.StatusConflict,
	shopd.EKeyReused:         http.StatusUnprocessableEntity,
	shopd.ERateLimited:       http.StatusTooManyRequests,
	shopd.EUnavailable:       http.StatusServiceUnavailable,
	shopd.EInternal:          http.StatusInternalServerError,
}

// codeOfStatus names the problem type of errors Echo and the validator
// raise with a bare status.
var codeOfStatus = map[int]string{
	http.StatusBadRequest: shopd.EInvalid, http.StatusUnauthorized: shopd.EUnauthorized,
	http.StatusForbidden: shopd.EForbidden, http.StatusNotFound: shopd.ENotFound,
	http.StatusMethodNotAllowed: "method_not_allowed", http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnsupportedMediaType: "unsupported_media_type",
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// validationError carries per-field request validation failures.
type validationError struct{ fields []fieldError }

func (v *validationError) Error() string {
	parts := make([]string, len(v.fields))
	for i, f := range v.fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// unavailableRetryAfter is what a 503 tells clients to wait by default.
const unavailableRetryAfter = 2 * time.Second

// problemTypeBase prefixes problem types; they name the error code.
const problemTypeBase = "https://shopd.dev/problems/"

// errorHandler is Echo's HTTPErrorHandler: every error, from any layer,
// leaves as problem+json here and nowhere else.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p, retryAfter := toProblem(err)
		p.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
		p.Instance = c.Request().URL.Path
		if p.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", p.RequestID, "path", c.Request().URL.Path, "err", err)
		}
		if p.Status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="shopd"`)
		}
		if retryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		_ = c.JSON(p.Status, p)
	}
}

// toProblem builds the client's view of err and the Retry-After seconds.
func toProblem(err error) (problem, int) {
	var v *validationError
	var de *shopd.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &v):
		return problem{Type: problemTypeBase + shopd.EInvalid, Title: "Invalid request", Status: http.StatusBadRequest,
			Detail: "The request does not match the API contract.", Errors: v.fields}, 0
	case errors.As(err, &de):
		status, ok := statusOf[de.Code]
		if !ok || status >= 500 {
			// Unavailable keeps its message (it tells the client to retry); internal never does.
			if de.Code != shopd.EUnavailable {
				return internalProblem(), 0
			}
		}
		p := problem{Type: problemTypeBase + de.Code, Title: http.StatusText(status), Status: status, Detail: de.Message}
		if de.Field != "" {
			p.Errors = []fieldError{{Field: de.Field, Message: de.Message}}
		}
		retryAfter := de.RetryAfter
		if de.Code == shopd.EUnavailable && retryAfter == 0 {
			retryAfter = unavailableRetryAfter
		}
		return p, int(math.Ceil(retryAfter.Seconds()))
	case errors.As(err, &he):
		if he.Internal != nil {
			if p, ra := toProblem(he.Internal); p.Status != http.StatusInternalServerError {
				return p, ra
			}
		}
		if he.Code >= 500 {
			return internalProblem(), 0
		}
		code := codeOfStatus[he.Code]
		if code == "" {
			code = strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_")
		}
		detail := fmt.Sprint(he.Message)
		switch he.Code {
		case http.StatusRequestEntityTooLarge:
			detail = "The request body is too large."
		case http.StatusNotFound:
			detail = "No such resource."
		case http.StatusUnauthorized:
			detail = "A valid bearer token is required."
		}
		return problem{Type: problemTypeBase + code, Title: http.StatusText(he.Code), Status: he.Code, Detail: detail}, 0
	}
	return internalProblem(), 0
}

func internalProblem() problem {
	return problem{Type: problemTypeBase + shopd.EInternal, Title: "Internal Server Error", Status: 500,
		Detail: "Something failed on our side. Quote the request id when reporting it."}
}

// validationProblem turns kin-openapi's request errors into per-field errors.
// Security failures keep their own status (401/403) and win over the rest.
func validationProblem(me openapi3.MultiError) *echo.HTTPError {
	var fields []fieldError
	for _, err := range me {
		var se *openapi3filter.SecurityRequirementsError
		if errors.As(err, &se) {
			for _, e := range se.Errors {
				var he *echo.HTTPError
				if errors.As(e, &he) {
					return he
				}
			}
			return echo.NewHTTPError(http.StatusUnauthorized)
		}
		fields = append(fields, fieldErrorsOf(err)...)
	}
	return &echo.HTTPError{Code: http.StatusBadRequest, Internal: &validationError{fields: fields}}
}

func fieldErrorsOf(err error) []fieldError {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return []fieldError{{Field: "request", Message: "The request is not valid."}}
	}
	var where string
	switch {
	case re.Parameter != nil:
		where = re.Parameter.Name
	case re.RequestBody != nil:
		where = "body"
	default:
		where = "request"
	}
	var pe *openapi3filter.ParseError
	if errors.As(re.Err, &pe) {
		return []fieldError{{Field: where, Message: "Malformed value: " + firstLine(pe.Reason)}}
	}
	var me openapi3.MultiError
	if errors.As(re.Err, &me) {
		var out []fieldError
		for _, e := range me {
			out = append(out, schemaFieldError(where, e))
		}
		return out
	}
	if re.Err == nil {
		return []fieldError{{Field: where, Message: firstLine(re.Reason)}}
	}
	return []fieldError{schemaFieldError(where, re.Err)}
}

func schemaFieldError(where string, err error) fieldError {
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		return fieldError{Field: where, Message: firstLine(err.Error())}
	}
	path := se.JSONPointer()
	field := where
	if len(path) > 0 {
		field = strings.Join(path, ".")
	}
	return fieldError{Field: field, Message: firstLine(se.Reason)}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
