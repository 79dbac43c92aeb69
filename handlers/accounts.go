package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// GetHealth says the process is up.
func (s *Server) GetHealth(ctx context.Context, _ gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: "ok"}, nil
}

// GetReady says whether the database answers.
func (s *Server) GetReady(ctx context.Context, _ gen.GetReadyRequestObject) (gen.GetReadyResponseObject, error) {
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness check failed", "err", err)
		return gen.GetReady503ApplicationProblemPlusJSONResponse{
			Type: problemTypeBase + shopd.EUnavailable, Title: "Service Unavailable", Status: 503,
			Detail: ptr("The database is not reachable."),
		}, nil
	}
	return gen.GetReady200JSONResponse{Status: "ready"}, nil
}

// GetJwks publishes the token verification keys.
func (s *Server) GetJwks(ctx context.Context, _ gen.GetJwksRequestObject) (gen.GetJwksResponseObject, error) {
	b, err := s.tokens.JWKS()
	if err != nil {
		return nil, err
	}
	var out gen.GetJwks200JSONResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return out, nil
}

// Register creates a customer account. Registrations are limited per
// client IP: every valid request takes a slot before its password is
// hashed (so concurrent requests cannot all slip past the limit), a
// duplicate email too (it tells whether an account exists); only a
// failure on our side gives the slot back.
func (s *Server) Register(ctx context.Context, req gen.RegisterRequestObject) (gen.RegisterResponseObject, error) {
	b := req.Body
	first, last := strings.TrimSpace(b.FirstName), strings.TrimSpace(b.LastName)
	switch {
	case len([]rune(b.Password)) < auth.MinPasswordLength:
		return nil, shopd.FieldError("password", "Must be at least %d characters.", auth.MinPasswordLength)
	case first == "":
		return nil, shopd.FieldError("firstName", "Must not be blank.")
	case last == "":
		return nil, shopd.FieldError("lastName", "Must not be blank.")
	}
	slots := []limitSlot{{key: "registrations:" + clientIP(ctx), limit: s.registerLimit}}
	if err := s.takeSlots(ctx, slots, "Too many registrations from this address; try again later."); err != nil {
		return nil, err
	}
	hash, err := auth.HashPasswordContext(ctx, b.Password)
	if err != nil {
		s.refundSlots(ctx, slots)
		return nil, hashingError(err)
	}
	u, err := s.store.CreateUser(ctx, store.NewUser{
		Email: string(b.Email), PasswordHash: hash, Role: auth.RoleCustomer,
		FirstName: first, LastName: last, Phone: b.Phone,
	})
	if err != nil {
		if code := shopd.ErrorCode(err); code == shopd.EInternal || code == shopd.EUnavailable {
			s.refundSlots(ctx, slots)
		}
		return nil, err
	}
	return gen.Register201JSONResponse(toAPICustomer(u)), nil
}

// Login exchanges credentials for an access token. Failed logins are
// limited per email and client IP, and per client IP across all emails;
// past either limit every attempt is refused for a while, right password or
// not. Each attempt takes a slot under both limits before the password is
// checked and gives them back when it succeeds: racing guesses, on one
// instance or many sharing the limiter, cannot all pass a check made
// before any of them failed.
func (s *Server) Login(ctx context.Context, req gen.LoginRequestObject) (gen.LoginResponseObject, error) {
	noStore(ctx)
	email := store.NormalizeEmail(string(req.Body.Email))
	ip := clientIP(ctx)
	slots := []limitSlot{
		{key: "login-failures-ip:" + ip, limit: s.loginIPLimit},
		{key: "login-failures:" + email + "|" + ip, limit: s.loginLimit},
	}
	if err := s.takeSlots(ctx, slots, "Too many failed logins; try again later."); err != nil {
		return nil, err
	}
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil && shopd.ErrorCode(err) != shopd.ENotFound {
		s.refundSlots(ctx, slots)
		return nil, err
	}
	ok, err := auth.CheckPassword(ctx, u.PasswordHash, req.Body.Password) // an unknown email checks a dummy hash
	if err != nil {
		s.refundSlots(ctx, slots)
		return nil, hashingError(err)
	}
	if !ok {
		return nil, shopd.Errorf(shopd.EUnauthorized, "Wrong email or password.")
	}
	s.refundSlots(ctx, slots)
	token, err := s.tokens.Issue(u.ID, u.Role)
	if err != nil {
		return nil, err
	}
	return gen.Login200JSONResponse{
		AccessToken: token,
		TokenType:   gen.TokenResponseTokenTypeBearer,
		ExpiresIn:   int32(s.tokens.TTL().Seconds()),
	}, nil
}

// hashingError tells the client to come back shortly when too many
// password checks are already waiting (auth.ErrHashingBusy).
func hashingError(err error) error {
	if errors.Is(err, auth.ErrHashingBusy) {
		return &shopd.Error{Code: shopd.ERateLimited, Message: "Too many logins at once; try again shortly.", RetryAfter: time.Second}
	}
	return err
}

// maxCredentialBodyBytes bounds login and registration bodies, far above
// the largest valid one (its fields are at most 966 characters, under 6
// KiB even as JSON escapes). A login waits for a hashing slot holding its
// body: at the general 1 MiB limit a flood of 300 padded logins took the
// server past 3 GB.
const maxCredentialBodyBytes = "16KiB"

// credentialBodyLimit answers 413 to a login or registration body over
// maxCredentialBodyBytes, before it is read (it must run before the
// request validator, which reads bodies).
var credentialBodyLimit = middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
	Limit: maxCredentialBodyBytes,
	Skipper: func(c echo.Context) bool {
		p := c.Request().URL.Path
		return c.Request().Method != http.MethodPost || p != "/v1/auth/login" && p != "/v1/auth/register"
	},
})

// limitSlot is one limit an attempt counts against.
type limitSlot struct {
	key   string
	limit ratelimit.Limit
}

// takeSlots records an attempt under every limit, or under none: when one
// refuses, those already taken are given back and the error is
// ERateLimited with the refusing limit's retry-after and the message.
func (s *Server) takeSlots(ctx context.Context, slots []limitSlot, message string) error {
	for i, sl := range slots {
		r, err := s.limiter.Allow(ctx, sl.key, sl.limit)
		if err != nil || !r.Allowed {
			s.refundSlots(ctx, slots[:i])
			if err != nil {
				return err
			}
			return &shopd.Error{Code: shopd.ERateLimited, Message: message, RetryAfter: r.RetryAfter}
		}
	}
	return nil
}

// refundSlots gives back an attempt that turned out not to count. It runs
// even when the client has gone (its context cancelled); a refund that
// fails leaves the attempt counted, which errs on the safe side.
func (s *Server) refundSlots(ctx context.Context, slots []limitSlot) {
	ctx = context.WithoutCancel(ctx)
	for _, sl := range slots {
		if err := s.limiter.Refund(ctx, sl.key, sl.limit); err != nil {
			s.log.WarnContext(ctx, "refund rate limit slot", "key_prefix", strings.SplitN(sl.key, ":", 2)[0], "err", err)
		}
	}
}

// GetMe returns the caller's profile with their saved addresses and
// order statistics.
func (s *Server) GetMe(ctx context.Context, _ gen.GetMeRequestObject) (gen.GetMeResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cust, err := s.store.Customer(ctx, c.UserID, false)
	if err != nil {
		return nil, accountGone(err) // a valid token for a deleted account
	}
	return gen.GetMe200JSONResponse(toAPICustomerProfile(cust)), nil
}
