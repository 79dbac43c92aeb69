// Package stripefake is a stateful Stripe test double: an httptest server
// speaking enough of Stripe's API for stripe-go v76 (customers,
// PaymentIntents, refunds) with Stripe's idempotency-key replay, counters
// to assert on, and fault injection.
//
// Use stripe-mock (internal/stripemock) to check request shapes against the
// real API's spec; use this double where a test must count what was created
// or break Stripe on purpose, which stateless stripe-mock cannot do.
//
// Deliberate differences from Stripe:
//   - requests with the same idempotency key that arrive together are
//     served one after the other (the later ones replay the first), where
//     Stripe answers 409 idempotency_key_in_use while the first is running;
//   - keys are scoped to endpoint path + key and never expire;
//   - only successful answers are recorded for replay;
//   - a refund does not need the intent to have been paid (tests mark
//     orders paid with signed webhooks, not through the double); it only
//     refuses cancelled intents and amounts beyond what is left;
//   - no minimum charge amount, and one maximum (MaxAmount) for every
//     currency, where Stripe's depends on the currency.
package stripefake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MaxAmount is the largest PaymentIntent amount Stripe accepts for usd (and
// most currencies), in minor units; a larger one is refused for good with
// amount_too_large and Stripe's message (in dollars, whatever the currency).
const MaxAmount = 99_999_999

// Intent is a PaymentIntent the double holds.
type Intent struct {
	ID, ClientSecret, Status, Currency string
	CustomerID, Description            string
	// Amount, AmountReceived and AmountRefunded are in minor units, as
	// Stripe's amount fields are.
	Amount, AmountReceived, AmountRefunded int64
	Metadata                               map[string]string
	// ChargeID is the intent's charge, the one refunds are made against.
	ChargeID string
	Created  time.Time
}

// OrderID is the intent's metadata.orderId.
func (in Intent) OrderID() string { return in.Metadata["orderId"] }

// Refund is a refund the double made.
type Refund struct {
	ID, PaymentIntentID, ChargeID, Status, Reason string
	Amount                                        int64
	Metadata                                      map[string]string
	// IdempotencyKey is the key the refund was created with, "" for none.
	IdempotencyKey string
}

type customer struct {
	id, email, name string
	metadata        map[string]string
	created         time.Time
}

// recorded is a successful answer kept for replay under its idempotency key.
type recorded struct {
	params string // the request's form, canonically encoded
	status int
	body   []byte
}

type fault struct {
	n      int
	status int
}

// Server is a running double. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give stripe-go (payments.Config.APIBase).
	URL string

	srv *httptest.Server

	mu        sync.Mutex
	latency   time.Duration
	customers []*customer
	intents   map[string]*Intent
	order     []string // intent ids in creation order
	refunds   []*Refund
	keys      map[string]*recorded     // path + "\x00" + Idempotency-Key
	calls     map[string]int           // method + " " + path
	failures  map[string]*fault        // path -> requests to fail before acting
	losses    map[string]int           // path -> responses to lose after acting
	holds     map[string]chan struct{} // path -> closed when held requests may go on
	held      map[string]int           // path -> requests waiting on its hold
}

// New starts a double that closes when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		intents:  map[string]*Intent{},
		keys:     map[string]*recorded{},
		calls:    map[string]int{},
		failures: map[string]*fault{},
		losses:   map[string]int{},
		holds:    map[string]chan struct{}{},
		held:     map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/customers", s.endpoint(s.createCustomer))
	mux.HandleFunc("POST /v1/payment_intents", s.endpoint(s.createIntent))
	mux.HandleFunc("GET /v1/payment_intents/{id}", s.endpoint(s.getIntent))
	mux.HandleFunc("POST /v1/payment_intents/{id}/cancel", s.endpoint(s.cancelIntent))
	mux.HandleFunc("POST /v1/refunds", s.endpoint(s.createRefund))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "",
			fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewServer(s.front(mux))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// front counts the call, waits out the latency, injects failures and checks
// the API key, in that order, before the endpoint sees the request.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Request-Id", "req_"+randomID(14))
		// Reading the body first lets net/http notice a client that hangs
		// up during the latency below.
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", "Invalid request body: "+err.Error())
			return
		}
		s.mu.Lock()
		s.calls[r.Method+" "+r.URL.Path]++
		latency := s.latency
		hold := s.holds[r.URL.Path]
		if hold != nil {
			s.held[r.URL.Path]++
		}
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			s.mu.Lock()
			s.held[r.URL.Path]--
			s.mu.Unlock()
			if r.Context().Err() != nil {
				return
			}
		}
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}

		s.mu.Lock()
		var failStatus int
		if f := s.failures[r.URL.Path]; f != nil && f.n > 0 {
			f.n--
			failStatus = f.status
		}
		s.mu.Unlock()
		if failStatus != 0 {
			writeFault(w, failStatus)
			return
		}

		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !(strings.HasPrefix(key, "sk_") || strings.HasPrefix(key, "rk_")) {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "",
				"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// answer is what an endpoint returns: a status and a JSON-able body.
type answer struct {
	status int
	body   any
}

func ok(body any) answer { return answer{status: http.StatusOK, body: body} }

// stripeError builds Stripe's error answer.
func stripeError(status int, typ, code, message string) answer {
	e := map[string]any{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
	}
	return answer{status: status, body: map[string]any{"error": e}}
}

// endpoint runs fn under the server's lock with Stripe's idempotency rules:
// a POST whose Idempotency-Key was seen on this path replays the recorded
// answer (or fails with idempotency_error if its parameters differ), and
// creates nothing. Holding the lock from look-up to record is what makes
// concurrent requests with one key create one object.
func (s *Server) endpoint(fn func(r *http.Request, form url.Values) answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form := r.PostForm // parsed in front
		if r.Method == http.MethodGet {
			form = r.Form
		}
		params := form.Encode() // sorted by key, so equal forms encode equally

		s.mu.Lock()
		defer s.mu.Unlock()
		idemKey := ""
		if r.Method == http.MethodPost {
			if k := r.Header.Get("Idempotency-Key"); k != "" {
				idemKey = r.URL.Path + "\x00" + k
			}
		}
		var status int
		var body []byte
		replayed := false
		if rec, seen := s.keys[idemKey]; idemKey != "" && seen {
			if rec.params != params {
				a := stripeError(http.StatusBadRequest, "idempotency_error", "",
					fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.",
						r.Header.Get("Idempotency-Key")))
				status, body = a.status, mustJSON(a.body)
			} else {
				status, body, replayed = rec.status, rec.body, true
			}
		} else {
			a := fn(r, form)
			status, body = a.status, mustJSON(a.body)
			if idemKey != "" && status < 300 {
				s.keys[idemKey] = &recorded{params: params, status: status, body: body}
			}
		}

		if s.losses[r.URL.Path] > 0 {
			s.losses[r.URL.Path]--
			writeFault(w, http.StatusInternalServerError)
			return
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			w.Header().Set("Idempotency-Key", k)
		}
		writeJSON(w, status, body)
	}
}

func (s *Server) createCustomer(r *http.Request, form url.Values) answer {
	c := &customer{
		id:       "cus_" + randomID(14),
		email:    form.Get("email"),
		name:     form.Get("name"),
		metadata: metadata(form),
		created:  time.Now(),
	}
	s.customers = append(s.customers, c)
	return ok(map[string]any{
		"id": c.id, "object": "customer", "email": nullable(c.email), "name": nullable(c.name),
		"metadata": c.metadata, "created": c.created.Unix(), "livemode": false,
	})
}

func (s *Server) createIntent(r *http.Request, form url.Values) answer {
	amount, err := strconv.ParseInt(form.Get("amount"), 10, 64)
	switch {
	case form.Get("amount") == "":
		return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "Missing required param: amount.")
	case err != nil || amount < 1:
		return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer",
			"This value must be greater than or equal to 1.")
	case form.Get("currency") == "":
		return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "Missing required param: currency.")
	case amount > MaxAmount:
		return stripeError(http.StatusBadRequest, "invalid_request_error", "amount_too_large",
			"Amount must be no more than $999,999.99")
	}
	id := "pi_" + randomID(24)
	in := &Intent{
		ID:           id,
		ClientSecret: id + "_secret_" + randomID(24),
		Status:       "requires_payment_method",
		Currency:     strings.ToLower(form.Get("currency")),
		CustomerID:   form.Get("customer"),
		Description:  form.Get("description"),
		Amount:       amount,
		Metadata:     metadata(form),
		Created:      time.Now(),
	}
	s.intents[id] = in
	s.order = append(s.order, id)
	return ok(intentJSON(in))
}

func (s *Server) getIntent(r *http.Request, _ url.Values) answer {
	in, found := s.intents[r.PathValue("id")]
	if !found {
		return noSuch("payment_intent", r.PathValue("id"))
	}
	return ok(intentJSON(in))
}

func (s *Server) cancelIntent(r *http.Request, form url.Values) answer {
	in, found := s.intents[r.PathValue("id")]
	if !found {
		return noSuch("payment_intent", r.PathValue("id"))
	}
	if in.Status == "succeeded" || in.Status == "canceled" {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state",
			fmt.Sprintf("You cannot cancel this PaymentIntent because it has a status of %s. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.", in.Status))
	}
	in.Status = "canceled"
	return ok(intentJSON(in))
}

func (s *Server) createRefund(r *http.Request, form url.Values) answer {
	piID := form.Get("payment_intent")
	if piID == "" {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing",
			"This double refunds by payment_intent only: missing param payment_intent.")
	}
	in, found := s.intents[piID]
	if !found {
		return noSuch("payment_intent", piID)
	}
	if in.Status == "canceled" {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state",
			"This PaymentIntent does not have a successful charge to refund.")
	}
	reason := form.Get("reason")
	switch reason {
	case "", "duplicate", "fraudulent", "requested_by_customer":
	default:
		return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_string",
			"Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
	}
	left := in.Amount - in.AmountRefunded
	if left <= 0 {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "charge_already_refunded",
			fmt.Sprintf("Charge %s has already been refunded.", chargeOf(in)))
	}
	amount := left
	if v := form.Get("amount"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer",
				"This value must be greater than or equal to 1.")
		}
		amount = n
	}
	if amount > left {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "amount_too_large",
			fmt.Sprintf("Refund amount (%d) is greater than unrefunded amount on charge (%d)", amount, left))
	}
	in.AmountRefunded += amount
	ref := &Refund{
		ID:              "re_" + randomID(24),
		PaymentIntentID: in.ID,
		ChargeID:        chargeOf(in),
		Status:          "succeeded",
		Reason:          reason,
		Amount:          amount,
		Metadata:        metadata(form),
		IdempotencyKey:  r.Header.Get("Idempotency-Key"),
	}
	s.refunds = append(s.refunds, ref)
	return ok(map[string]any{
		"id": ref.ID, "object": "refund", "amount": ref.Amount, "currency": in.Currency,
		"payment_intent": ref.PaymentIntentID, "charge": ref.ChargeID, "status": ref.Status,
		"reason": nullable(ref.Reason), "metadata": ref.Metadata, "created": time.Now().Unix(),
	})
}

// chargeOf gives the intent its charge on first use; called under s.mu.
func chargeOf(in *Intent) string {
	if in.ChargeID == "" {
		in.ChargeID = "ch_" + randomID(24)
	}
	return in.ChargeID
}

func intentJSON(in *Intent) map[string]any {
	var latestCharge any
	if in.ChargeID != "" {
		latestCharge = in.ChargeID
	}
	return map[string]any{
		"id":                        in.ID,
		"object":                    "payment_intent",
		"amount":                    in.Amount,
		"amount_received":           in.AmountReceived,
		"currency":                  in.Currency,
		"status":                    in.Status,
		"client_secret":             in.ClientSecret,
		"customer":                  nullable(in.CustomerID),
		"description":               nullable(in.Description),
		"metadata":                  in.Metadata,
		"latest_charge":             latestCharge,
		"automatic_payment_methods": map[string]any{"enabled": true},
		"created":                   in.Created.Unix(),
		"livemode":                  false,
	}
}

func noSuch(object, id string) answer {
	return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing",
		fmt.Sprintf("No such %s: '%s'", object, id))
}

// metadata collects the metadata[key]=value fields of a form.
func metadata(form url.Values) map[string]string {
	md := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			md[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return md
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// writeFault answers with the error Stripe would send for status, so that
// stripe-go decodes it into the same typed error.
func writeFault(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusPaymentRequired:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(mustJSON(map[string]any{"error": map[string]any{
			"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
			"message": "Your card was declined.",
		}}))
	case status == http.StatusUnauthorized:
		writeError(w, status, "invalid_request_error", "", "Invalid API Key provided: sk_test_****fake")
	case status == http.StatusNotFound:
		writeError(w, status, "invalid_request_error", "resource_missing", "No such object.")
	case status == http.StatusConflict:
		writeError(w, status, "invalid_request_error", "idempotency_key_in_use",
			"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.")
	case status == http.StatusTooManyRequests:
		writeError(w, status, "invalid_request_error", "rate_limit",
			"Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.")
	case status >= 500:
		writeError(w, status, "api_error", "", "An unknown error occurred.")
	default:
		writeError(w, status, "invalid_request_error", "", "Injected failure.")
	}
}

func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	a := stripeError(status, typ, code, message)
	writeJSON(w, a.status, mustJSON(a.body))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("stripefake: encode answer: %v", err))
	}
	return b
}

// randomID returns n characters of Stripe-like id alphabet.
func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// FailNext makes the next n requests to path (e.g. "/v1/payment_intents")
// fail with status before the double does anything: nothing is created and
// no idempotency key is recorded. The body is the error Stripe sends for
// that status (402 is a declined card, 409 a key in use, 5xx api_error).
func (s *Server) FailNext(path string, n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[path] = &fault{n: n, status: status}
}

// LoseNextResponse makes the next n requests to path take effect (objects
// created, idempotency key recorded) but answer 500, as when Stripe acted
// and its answer was lost on the way. A retry with the same key then gets
// the original object.
func (s *Server) LoseNextResponse(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.losses[path] = n
}

// Hold makes later requests to path wait, once counted, until release is
// called (then they go on, and later ones pass). Held says how many wait.
func (s *Server) Hold(path string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.holds[path] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.holds, path)
			s.mu.Unlock()
			close(ch)
		})
	}
}

// Held is how many requests to path wait on its Hold now.
func (s *Server) Held(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[path]
}

// SetLatency delays every later request by d before it is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetIntentStatus sets an intent's status, as a customer's payment or a
// failure would; "succeeded" also marks the whole amount received. It
// reports whether the intent exists.
func (s *Server) SetIntentStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, found := s.intents[id]
	if !found {
		return false
	}
	in.Status = status
	if status == "succeeded" {
		in.AmountReceived = in.Amount
		chargeOf(in)
	}
	return true
}

// IntentCount is how many PaymentIntents were created.
func (s *Server) IntentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.intents)
}

// IntentsForOrder returns the intents whose metadata.orderId is orderID, in
// creation order.
func (s *Server) IntentsForOrder(orderID string) []Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Intent
	for _, id := range s.order {
		if in := s.intents[id]; in.OrderID() == orderID {
			out = append(out, copyIntent(in))
		}
	}
	return out
}

// Intent returns the intent with the id.
func (s *Server) Intent(id string) (Intent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, found := s.intents[id]
	if !found {
		return Intent{}, false
	}
	return copyIntent(in), true
}

// Calls is how many requests arrived for method and path (e.g. "POST",
// "/v1/payment_intents"), failed and replayed ones included.
func (s *Server) Calls(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method+" "+path]
}

// Refunds returns the refunds made, oldest first.
func (s *Server) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Refund, len(s.refunds))
	for i, r := range s.refunds {
		out[i] = *r
		out[i].Metadata = maps.Clone(r.Metadata)
	}
	return out
}

// CustomerCount is how many customers were created.
func (s *Server) CustomerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.customers)
}

func copyIntent(in *Intent) Intent {
	c := *in
	c.Metadata = maps.Clone(in.Metadata)
	return c
}
