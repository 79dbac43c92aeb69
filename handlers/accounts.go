package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
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

// Register creates a customer account.
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
	hash, err := auth.HashPassword(b.Password)
	if err != nil {
		return nil, err
	}
	u, err := s.store.CreateUser(ctx, store.NewUser{
		Email: string(b.Email), PasswordHash: hash, Role: auth.RoleCustomer,
		FirstName: first, LastName: last, Phone: b.Phone,
	})
	if err != nil {
		return nil, err
	}
	return gen.Register201JSONResponse(toAPICustomer(u)), nil
}

// Login exchanges credentials for an access token. Failures are counted per
// email and client IP; past the limit every attempt is refused for a while,
// right password or not. Attempts for one email and IP are checked one at a
// time, so a burst of concurrent guesses cannot all slip past the count.
func (s *Server) Login(ctx context.Context, req gen.LoginRequestObject) (gen.LoginResponseObject, error) {
	email := store.NormalizeEmail(string(req.Body.Email))
	key := "login-failures:" + email + "|" + clientIP(ctx)
	mu := &s.loginLocks[fnv32(key)%uint32(len(s.loginLocks))]
	mu.Lock()
	defer mu.Unlock()
	if r, err := s.limiter.Peek(ctx, key, s.loginLimit); err != nil {
		return nil, err
	} else if !r.Allowed {
		return nil, &shopd.Error{Code: shopd.ERateLimited, Message: "Too many failed logins; try again later.", RetryAfter: r.RetryAfter}
	}
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil && shopd.ErrorCode(err) != shopd.ENotFound {
		return nil, err
	}
	ok, err := auth.CheckPassword(u.PasswordHash, req.Body.Password) // an unknown email checks a dummy hash
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, err := s.limiter.Allow(ctx, key, s.loginLimit); err != nil {
			return nil, err
		}
		return nil, shopd.Errorf(shopd.EUnauthorized, "Wrong email or password.")
	}
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

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// GetMe returns the caller's profile.
func (s *Server) GetMe(ctx context.Context, _ gen.GetMeRequestObject) (gen.GetMeResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		// A valid token for a deleted account.
		return nil, shopd.Errorf(shopd.EUnauthorized, "The account no longer exists.")
	}
	if err != nil {
		return nil, err
	}
	return gen.GetMe200JSONResponse(toAPICustomer(u)), nil
}
