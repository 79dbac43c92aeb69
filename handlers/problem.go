package handlers

import (
	"errors"
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

// problemKind is what every problem of one type says, whatever the
// occurrence: its HTTP status and its title.
type problemKind struct {
	Status int
	Title  string
}

// codeMethodNotAllowed is Echo's own: the path exists, the method does not.
const codeMethodNotAllowed = "method_not_allowed"

// problemKinds is the one table from error codes (every code in error.go,
// and Echo's own) to the status and title a client sees. The spec lists
// the same types, titles and statuses; a test keeps them equal.
var problemKinds = map[string]problemKind{
	shopd.EInvalid:           {http.StatusBadRequest, "Invalid Request"},
	shopd.EUnauthorized:      {http.StatusUnauthorized, "Unauthorized"},
	shopd.EForbidden:         {http.StatusForbidden, "Forbidden"},
	shopd.ENotFound:          {http.StatusNotFound, "Not Found"},
	codeMethodNotAllowed:     {http.StatusMethodNotAllowed, "Method Not Allowed"},
	shopd.EConflict:          {http.StatusConflict, "Conflict"},
	shopd.EInsufficientStock: {http.StatusConflict, "Insufficient Stock"},
	shopd.EDuplicate:         {http.StatusConflict, "Duplicate"},
	shopd.EInvalidTransition: {http.StatusConflict, "Invalid Transition"},
	shopd.EInFlight:          {http.StatusConflict, "Idempotency Key In Flight"},
	shopd.EKeyReused:         {http.StatusUnprocessableEntity, "Idempotency Key Reused"},
	// 409 like the other refusals of a well-formed request: 402 would
	// suggest that paying differently could help, and it cannot.
	shopd.EPaymentRefused:   {http.StatusConflict, "Payment Refused"},
	shopd.ERateLimited:      {http.StatusTooManyRequests, "Too Many Requests"},
	shopd.EPayloadTooLarge:  {http.StatusRequestEntityTooLarge, "Payload Too Large"},
	shopd.EUnsupportedMedia: {http.StatusUnsupportedMediaType, "Unsupported Media Type"},
	shopd.EUnavailable:      {http.StatusServiceUnavailable, "Service Unavailable"},
	shopd.EInternal:         {http.StatusInternalServerError, "Internal Server Error"},
}

// codeOfStatus names the code of errors that Echo, its middleware and the
// validator raise with a bare status. Any other 4xx is EInvalid: a client
// can act only on the types the spec lists.
var codeOfStatus = map[int]string{
	http.StatusBadRequest:            shopd.EInvalid,
	http.StatusUnauthorized:          shopd.EUnauthorized,
	http.StatusForbidden:             shopd.EForbidden,
	http.StatusNotFound:              shopd.ENotFound,
	http.StatusMethodNotAllowed:      codeMethodNotAllowed,
	http.StatusRequestEntityTooLarge: shopd.EPayloadTooLarge,
	http.StatusUnsupportedMediaType:  shopd.EUnsupportedMedia,
	http.StatusTooManyRequests:       shopd.ERateLimited,
}

// detailOfCode is what a bare-status error says; Echo's own messages are
// its status texts, which add nothing to the title.
var detailOfCode = map[string]string{
	shopd.EInvalid:          "The request is not valid.",
	shopd.EUnauthorized:     "A valid bearer token is required.",
	shopd.EForbidden:        "This operation is not allowed with this token.",
	shopd.ENotFound:         "No such resource.",
	codeMethodNotAllowed:    "The resource does not support this method; see the Allow header.",
	shopd.EPayloadTooLarge:  "The request body is too large.",
	shopd.EUnsupportedMedia: "The request body's content type is not accepted here.",
	shopd.ERateLimited:      "Too many requests; retry later.",
}

// ownWording are the codes whose bare-status errors come with a message
// of ours (auth's "This operation needs the admin role."), which says more
// than detailOfCode. Others carry library text (the router's "no matching
// operation was found"), which is replaced.
var ownWording = map[string]bool{shopd.EInvalid: true, shopd.EUnauthorized: true, shopd.EForbidden: true}

// problem is an RFC 9457 problem document.
type problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []fieldError `json:"errors,omitempty"`
	// The insufficient_stock extension members, inlined when present.
	*shortage
}

// shortage is the line an insufficient_stock problem is about.
type shortage struct {
	ProductID string `json:"productId"`
	SKU       string `json:"sku"`
	Requested int    `json:"requested"`
	Available int    `json:"available"`
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

// newProblem is a problem of code's kind; code must be in problemKinds.
func newProblem(code, detail string) problem {
	k := problemKinds[code]
	return problem{Type: problemTypeBase + code, Title: k.Title, Status: k.Status, Detail: detail}
}

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
		p := newProblem(shopd.EInvalid, "The request does not match the API contract.")
		p.Errors = v.fields
		return p, 0
	case errors.As(err, &de):
		return domainProblem(de)
	case errors.As(err, &he):
		if he.Internal != nil {
			if p, ra := toProblem(he.Internal); p.Status != http.StatusInternalServerError {
				return p, ra
			}
		}
		if he.Code >= 500 {
			return internalProblem(), 0
		}
		code, ok := codeOfStatus[he.Code]
		if !ok {
			code = shopd.EInvalid
		}
		detail := detailOfCode[code]
		if msg, ok := he.Message.(string); ok && ownWording[code] && msg != "" && msg != http.StatusText(he.Code) {
			detail = msg
		}
		return newProblem(code, detail), 0
	}
	return internalProblem(), 0
}

// domainProblem renders a domain error: its code's kind, its message, the
// field it names and, for a shortage, the line's extension members.
func domainProblem(de *shopd.Error) (problem, int) {
	k, ok := problemKinds[de.Code]
	// Unavailable keeps its message (it tells the client to retry); no
	// other 5xx does, and an unknown code is internal.
	if !ok || (k.Status >= 500 && de.Code != shopd.EUnavailable) {
		return internalProblem(), 0
	}
	p := newProblem(de.Code, de.Message)
	if de.Field != "" {
		p.Errors = []fieldError{{Field: de.Field, Message: de.Message}}
	}
	if de.Code == shopd.EInsufficientStock && de.Shortage != nil {
		s := de.Shortage
		p.shortage = &shortage{ProductID: s.ProductID, SKU: s.SKU, Requested: s.Requested, Available: s.Available}
	}
	retryAfter := de.RetryAfter
	if de.Code == shopd.EUnavailable && retryAfter == 0 {
		retryAfter = unavailableRetryAfter
	}
	return p, int(math.Ceil(retryAfter.Seconds()))
}

func internalProblem() problem {
	return newProblem(shopd.EInternal, "Something failed on our side. Quote the request id when reporting it.")
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
