package handlers

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/live"
)

// The live streams' routes. They are plain Echo routes (excluded from the
// generated server, skipped by the request validator): a stream writes
// events for as long as it stays open, and authenticates itself (a stream
// token in the URL, which the validator would not know).
const (
	adminEventsRoute = "/v1/admin/events"
	orderStreamRoute = "/v1/orders/:orderId/stream"
)

// isStreamRoute reports whether c was routed to a stream.
func isStreamRoute(c echo.Context) bool {
	p := c.Path()
	return p == adminEventsRoute || p == orderStreamRoute
}

// CreateStreamToken issues a 60-second token that opens the streams.
func (s *Server) CreateStreamToken(ctx context.Context, _ gen.CreateStreamTokenRequestObject) (gen.CreateStreamTokenResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	noStore(ctx)
	tok, err := s.tokens.IssueStream(c.UserID, c.Role)
	if err != nil {
		return nil, err
	}
	return gen.CreateStreamToken200JSONResponse{StreamToken: tok, ExpiresIn: int32(auth.StreamTokenTTL / time.Second)}, nil
}

// Limits the spec sets on the streams' parameters, which the validator
// does not check on these routes.
const (
	maxStreamTokenLen = 4096
	maxOrderIDLen     = 64
)

// checkStreamToken refuses a streamToken longer than the spec allows, as
// the validator would (400), before anything reads it.
func checkStreamToken(c echo.Context) error {
	if len(c.QueryParam(auth.StreamTokenParam)) > maxStreamTokenLen {
		return shopd.FieldError(auth.StreamTokenParam, "At most %d characters.", maxStreamTokenLen)
	}
	return nil
}

// streamAdminEvents streams every order transition and low-stock
// crossing to an admin.
func (s *Server) streamAdminEvents(c echo.Context) error {
	if err := checkStreamToken(c); err != nil {
		return err
	}
	cl, err := s.authn.AuthenticateStream(c.Request().Context(), c.Request())
	if err != nil {
		return err
	}
	if !cl.IsAdmin() {
		return shopd.Errorf(shopd.EForbidden, "This operation needs the admin role.")
	}
	return s.stream(c, cl, "")
}

// streamOrder streams one order's transitions to its owner or an admin;
// another customer's order is ENotFound.
func (s *Server) streamOrder(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("orderId")
	if len(id) > maxOrderIDLen {
		return shopd.FieldError("orderId", "At most %d characters.", maxOrderIDLen)
	}
	if err := checkStreamToken(c); err != nil {
		return err
	}
	cl, err := s.authn.AuthenticateStream(ctx, c.Request())
	if err != nil {
		return err
	}
	o, err := s.store.Order(ctx, id)
	if err != nil {
		return err
	}
	if !cl.IsAdmin() && o.CustomerID != cl.UserID {
		return shopd.Errorf(shopd.ENotFound, "Order %s not found.", id)
	}
	return s.stream(c, cl, o.ID)
}

// lastEventIDHeader carries where a reconnecting client resumes.
const lastEventIDHeader = "Last-Event-ID"

// stream subscribes cl's user to the hub (orderID "" for every event) and
// serves the stream, resuming after Last-Event-ID when sent, for as long
// as the account still has cl's role.
func (s *Server) stream(c echo.Context, cl auth.Claims, orderID string) error {
	notSent := shopd.FieldError(lastEventIDHeader, "Not an event id of this stream; reconnect without it to start from now.")
	var after *live.Cursor
	if v := c.Request().Header.Get(lastEventIDHeader); v != "" {
		cur, err := live.ParseCursor(v)
		if err != nil {
			return notSent
		}
		after = &cur
	}
	if s.streams == nil {
		return shopd.Errorf(shopd.EUnavailable, "Live streams are not available on this instance.")
	}
	if after != nil {
		ok, err := s.streams.Issued(c.Request().Context(), *after)
		if err != nil {
			return err
		}
		if !ok {
			return notSent
		}
	}
	counted := cl.UserID // a customer's streams are bounded per user; staff's are not
	if cl.IsAdmin() {
		counted = ""
	}
	sub, err := s.streams.Subscribe(counted, orderID)
	if err != nil {
		return err
	}
	defer sub.Close()
	check := func(ctx context.Context) error { return s.authn.CheckAccount(ctx, cl) }
	live.Stream{Hub: s.streams, Sub: sub, After: after, Heartbeat: s.streamHeartbeat, Check: check}.Serve(c.Request().Context(), c.Response())
	return nil
}

// noStore keeps a token response out of every cache (RFC 6749 section 5.1).
func noStore(ctx context.Context) {
	if ec := echoContext(ctx); ec != nil {
		h := ec.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
	}
}
