package notify_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	storefront = "https://shop.example"
	mailFrom   = "shop@shop.example"
	smsFrom    = "+15005550006"
	smsSID     = "AC0123456789"
	smsToken   = "secret-token"
)

// mailServer is a real SMTP server (emersion/go-smtp) on loopback that
// keeps what it receives. refuse makes it answer 451 to the next n
// messages (-1: all of them).
type mailServer struct {
	url string
	// user and pass, when set, are the only credentials it takes (AUTH
	// PLAIN), and it takes no message without them.
	user, pass string

	mu       sync.Mutex
	msgs     []receivedMail
	refuse   int
	refusals int
	logins   int // AUTH attempts
}

type receivedMail struct {
	from string
	to   []string
	data []byte
}

func newMailServer(t *testing.T) *mailServer {
	t.Helper()
	return newMailServerWithAuth(t, "", "")
}

func newMailServerWithAuth(t *testing.T, user, pass string) *mailServer {
	t.Helper()
	m := &mailServer{user: user, pass: pass}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{srv: m}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	m.url = "smtp://" + ln.Addr().String()
	return m
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func (m *mailServer) setRefuse(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refuse = n
}

func (m *mailServer) received() []receivedMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]receivedMail(nil), m.msgs...)
}

type mailSession struct {
	srv    *mailServer
	from   string
	to     []string
	authed bool
}

func (s *mailSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mailSession) Auth(string) (sasl.Server, error) {
	s.srv.mu.Lock()
	s.srv.logins++
	s.srv.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.refuse != 0 {
		if s.srv.refuse > 0 {
			s.srv.refuse--
		}
		s.srv.refusals++
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.msgs = append(s.srv.msgs, receivedMail{from: s.from, to: s.to, data: b})
	return nil
}

// parsedMail is a received message taken apart.
type parsedMail struct {
	to, subject, messageID, from string
	text, html                   string
}

func parse(t *testing.T, r receivedMail) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(r.data)))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	p := parsedMail{to: strings.Join(r.to, ","), subject: subject, messageID: msg.Header.Get("Message-Id"), from: msg.Header.Get("From")}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: want multipart/alternative (%v)", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mime part: %v", err)
		}
		b, _ := io.ReadAll(part) // quoted-printable is decoded by the reader
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		}
	}
	return p
}

// smsServer is a Twilio-compatible Messages endpoint.
type smsServer struct {
	url string

	mu   sync.Mutex
	sent []url.Values
	auth []string
}

func newSMSServer(t *testing.T) *smsServer {
	t.Helper()
	s := &smsServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.PathValue("sid") != user {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.sent = append(s.sent, r.PostForm)
		s.auth = append(s.auth, user+":"+pass)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sid":"SM`+strings.ReplaceAll(uuid.NewString(), "-", "")+`","status":"queued"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *smsServer) messages() ([]url.Values, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.sent...), append([]string(nil), s.auth...)
}

// instance is one server's money path, outbox and job client.
type instance struct {
	svc    *orders.Service
	outbox *notify.Outbox
	jobs   *jobs.Client
	reg    *prometheus.Registry
}

// bundle is a database shared by one or more instances, the Stripe
// double, the mail and SMS servers.
type bundle struct {
	db    *sqlx.DB
	st    *store.Store
	fake  *stripefake.Server
	mail  *mailServer
	sms   *smsServer
	insts []*instance
}

type options struct {
	instances   int
	maxAttempts int
	smtpURL     string // "" for the bundle's mail server
	// paymentWindow is how long orders wait for payment (0: an hour).
	paymentWindow time.Duration
}

func setup(t *testing.T, opt options) *bundle {
	t.Helper()
	db := pgtest.NewDB(t)
	b := &bundle{db: db, st: store.New(db), fake: stripefake.New(t), mail: newMailServer(t), sms: newSMSServer(t)}
	if opt.instances == 0 {
		opt.instances = 1
	}
	if opt.smtpURL == "" {
		opt.smtpURL = b.mail.url
	}
	for range opt.instances {
		b.insts = append(b.insts, b.newInstance(t, opt))
	}
	return b
}

func (b *bundle) newInstance(t *testing.T, opt options) *instance {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	email, err := notify.NewSMTPSender(opt.smtpURL, mailFrom)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{reg: prometheus.NewRegistry()}
	in.outbox, err = notify.New(notify.Config{
		DB: b.db, Email: email,
		SMS:           &notify.SMSSender{APIURL: b.sms.url, AccountSID: smsSID, AuthToken: smsToken, From: smsFrom},
		StorefrontURL: storefront, MaxAttempts: opt.maxAttempts, RetryBase: 5 * time.Millisecond,
		Registry: in.reg, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	in.svc = &orders.Service{
		Store:         b.st,
		Payments:      payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: b.fake.URL, MaxNetworkRetries: -1}),
		Pricing:       shopd.DefaultPricing,
		PaymentWindow: cmp.Or(opt.paymentWindow, time.Hour),
		Log:           log,
		Notify:        in.outbox,
	}
	workers := river.NewWorkers()
	if err := errors.Join(orders.AddWorkers(workers, in.svc), in.outbox.AddWorkers(workers)); err != nil {
		t.Fatal(err)
	}
	in.jobs, err = jobs.New(db(b), jobs.Config{
		PollInterval: 20 * time.Millisecond, Workers: workers, TestOnly: true, StopTimeout: 200 * time.Millisecond,
		Kinds: append(orders.JobKinds(), notify.JobKinds()...),
	})
	if err != nil {
		t.Fatal(err)
	}
	in.svc.Jobs = in.jobs
	in.outbox.SetJobs(in.jobs)
	if err := in.jobs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Registered after the database's cleanup, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := jobs.Stop(ctx, in.jobs); err != nil {
			t.Errorf("stop jobs: %v", err)
		}
	})
	return in
}

func db(b *bundle) *sql.DB { return b.db.DB }

// customer creates a customer named firstName, with phone when not "".
func (b *bundle) customer(t *testing.T, firstName, phone string) (id, email string) {
	t.Helper()
	nu := store.NewUser{Email: "c-" + uuid.NewString()[:8] + "@example.com", PasswordHash: "x", Role: "customer",
		FirstName: firstName, LastName: "Customer"}
	if phone != "" {
		nu.Phone = &phone
	}
	u, err := b.st.CreateUser(context.Background(), nu)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID, u.Email
}

// order checks out qty units of a new product (1500 cents each) for
// userID through inst.
func (b *bundle) order(t *testing.T, inst *instance, userID string) store.Order {
	t.Helper()
	return b.orderTo(t, inst, userID, `{"firstName":"Ship","lastName":"To","line1":"1 Road","city":"London","postalCode":"N1","country":"GB"}`)
}

// orderTo is order with the shipping address addr (JSON).
func (b *bundle) orderTo(t *testing.T, inst *instance, userID, addr string) store.Order {
	t.Helper()
	ctx := context.Background()
	p, err := b.st.CreateProduct(ctx, store.NewProduct{
		SKU: "SKU-" + uuid.NewString()[:8], Name: "Teapot", PriceCents: 1500, Stock: 10, IsActive: true,
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.AddToCart(ctx, userID, p.ID, 2); err != nil {
		t.Fatal(err)
	}
	placed, err := inst.svc.Checkout(ctx, orders.CheckoutRequest{
		UserID: userID, Key: "key-" + uuid.NewString(), RequestHash: "h", ShippingAddress: []byte(addr), BillingAddress: []byte(addr),
	})
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	return placed.Order
}

// succeeded is the payment_intent.succeeded event for all of o.
func succeeded(o store.Order, eventID string) payments.Event {
	return payments.Event{ID: eventID, Type: orders.StripePaymentSucceeded,
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
			Status: "succeeded", AmountCents: o.TotalCents}}
}

// notifications are the outbox rows of an order, oldest first.
func (b *bundle) notifications(t *testing.T, orderID string) []notify.Notification {
	t.Helper()
	var ns []notify.Notification
	if err := b.db.Select(&ns, `SELECT id, channel, template, recipient, subject, body_text, body_html, status, attempts,
		last_error, order_id, customer_id, dedupe_key, created_at, sent_at
		FROM notifications WHERE order_id = $1 ORDER BY created_at, template, id`, orderID); err != nil {
		t.Fatal(err)
	}
	return ns
}

// eventually polls cond every few milliseconds until it holds, failing
// the test after a generous bound (a hung job, not a slow one).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// status waits until notification id is in a final state and returns it.
func (b *bundle) settled(t *testing.T, id string) notify.Notification {
	t.Helper()
	var n notify.Notification
	eventually(t, "notification "+id+" to settle", func() bool {
		if err := b.db.Get(&n, `SELECT id, channel, template, recipient, subject, body_text, body_html, status, attempts,
			last_error, order_id, customer_id, dedupe_key, created_at, sent_at FROM notifications WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return n.Status != notify.StatusPending
	})
	return n
}

// counted waits until the notification counter name for template and
// channel, summed over insts, reaches want, and fails the test when it
// ends above it. The counter moves just after the row's status is
// written, so a read right after the row settles may be one behind.
func counted(t *testing.T, insts []*instance, name, template, channel string, want float64) {
	t.Helper()
	var got float64
	sum := func() bool {
		got = 0
		for _, in := range insts {
			got += in.counter(t, name, template, channel)
		}
		return got >= want
	}
	deadline := time.Now().Add(20 * time.Second)
	for !sum() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got != want {
		t.Errorf("%s{template=%q,channel=%q} = %v, want %v", name, template, channel, got, want)
	}
}

// counter is the value of the notification counter name for template and
// channel on the instance's registry.
func (in *instance) counter(t *testing.T, name, template, channel string) float64 {
	t.Helper()
	families, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["template"] == template && labels["channel"] == channel {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{template=%q,channel=%q}", name, template, channel)
	return 0
}
