package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/server"
)

const payUsage = `usage: shopdev pay [--url BASE_URL] ORDER_ID

Marks an order paid on a running shopd by sending it the webhook Stripe
would: a payment_intent.succeeded for the order's intent, amount and
currency, signed with STRIPE_WEBHOOK_SECRET (default: shopdev's). For local
runs on stripe-mock, which never sends webhooks. The server is BASE_URL,
else the one shopdev recorded in DATA_DIR/server-url, else http://HTTP_ADDR;
it reads the order as the bootstrap admin (BOOTSTRAP_ADMIN_EMAIL and
BOOTSTRAP_ADMIN_PASSWORD, default: shopdev's demo admin).`

// pay sends a correctly signed payment_intent.succeeded for one order to a
// running server and prints the order's status afterwards.
func pay(ctx context.Context, args []string, dc devConfig, getenv func(string) string, stdout io.Writer) error {
	orderID, base, err := parsePayArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, payUsage)
		return nil
	}
	if err != nil {
		return err
	}
	// The server's own reading of the environment, with shopdev's defaults,
	// so the token and the signature are the ones it accepts.
	cfg, err := server.LoadConfig(dc.serverEnv(getenv, nil))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.StripeWebhookSecret == "" {
		return errors.New("pay: STRIPE_WEBHOOK_SECRET is not set; use the server's")
	}
	if base == "" {
		if base, err = recordedURL(dc.urlFile()); err != nil {
			return fmt.Errorf("pay: %w", err)
		}
	}
	if base == "" {
		base = "http://" + cfg.HTTPAddr
	}
	shop := shopAPI{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 15 * time.Second}}
	// A real login: the server accepts tokens only for accounts it has.
	if shop.token, err = shop.login(ctx, cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword); err != nil {
		return err
	}
	return shop.pay(ctx, orderID, cfg.StripeWebhookSecret, stdout)
}

// parsePayArgs reads [--url BASE_URL] ORDER_ID, the flag before or after
// the order id, as people type it.
func parsePayArgs(args []string) (orderID, base string, err error) {
	fs := flag.NewFlagSet("pay", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage is printed on request
	baseFlag := fs.String("url", "", "")
	parse := func(args []string) error {
		err := fs.Parse(args)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			return fmt.Errorf("pay: %w\n%s", err, payUsage)
		}
		return err
	}
	if err := parse(args); err != nil {
		return "", "", err
	}
	if fs.NArg() == 0 {
		return "", "", errors.New("pay: no order id\n" + payUsage)
	}
	orderID = fs.Arg(0)
	if err := parse(fs.Args()[1:]); err != nil {
		return "", "", err
	}
	if fs.NArg() > 0 {
		return "", "", fmt.Errorf("pay: unexpected arguments %q\n%s", fs.Args(), payUsage)
	}
	return orderID, *baseFlag, nil
}

// pay reads the order, sends the signed event and prints the order after.
func (s shopAPI) pay(ctx context.Context, orderID, webhookSecret string, stdout io.Writer) error {
	o, err := s.order(ctx, orderID)
	if err != nil {
		return err
	}
	if o.PaymentIntentID == "" {
		return fmt.Errorf("pay: order %s has no payment intent", orderID)
	}
	now := time.Now()
	payload, err := succeededEvent(o, now)
	if err != nil {
		return err
	}
	if err := s.deliver(ctx, payload, payments.SignWebhook(payload, webhookSecret, now)); err != nil {
		return err
	}
	after, err := s.order(ctx, orderID)
	if err != nil {
		return err
	}
	name := after.ID
	if after.OrderNumber != "" {
		name = after.OrderNumber + " (" + after.ID + ")"
	}
	fmt.Fprintf(stdout, "order %s: status %s, payment %s\n", name, after.Status, after.PaymentStatus)
	return nil
}

// payOrder is the part of an order (API.md, Orders) that pay reads.
type payOrder struct {
	ID              string `json:"id"`
	OrderNumber     string `json:"orderNumber"`
	Status          string `json:"status"`
	PaymentStatus   string `json:"paymentStatus"`
	PaymentIntentID string `json:"paymentIntentId"`
	TotalCents      int64  `json:"totalCents"`
	Currency        string `json:"currency"`
}

// succeededEvent is the event Stripe sends when the order's intent is paid
// in full.
func succeededEvent(o payOrder, at time.Time) ([]byte, error) {
	type paymentIntent struct {
		ID             string            `json:"id"`
		Object         string            `json:"object"`
		Amount         int64             `json:"amount"`
		AmountReceived int64             `json:"amount_received"`
		Currency       string            `json:"currency"`
		Status         string            `json:"status"`
		Metadata       map[string]string `json:"metadata"`
	}
	type data struct {
		Object paymentIntent `json:"object"`
	}
	event := struct {
		ID         string `json:"id"`
		Object     string `json:"object"`
		Type       string `json:"type"`
		APIVersion string `json:"api_version"`
		Created    int64  `json:"created"`
		Livemode   bool   `json:"livemode"`
		Data       data   `json:"data"`
	}{
		// Random, so each run is a new event the server applies rather than
		// a duplicate it ignores.
		ID:     "evt_local_" + rand.Text(),
		Object: "event",
		Type:   "payment_intent.succeeded",
		// The version stripe-go v76 speaks.
		APIVersion: "2023-10-16",
		Created:    at.Unix(),
		Data: data{Object: paymentIntent{
			ID:             o.PaymentIntentID,
			Object:         "payment_intent",
			Amount:         o.TotalCents,
			AmountReceived: o.TotalCents,
			Currency:       o.Currency,
			Status:         "succeeded",
			Metadata:       map[string]string{"orderId": o.ID},
		}},
	}
	b, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

// shopAPI is the running server, as pay talks to it.
type shopAPI struct {
	base  string
	token string
	http  *http.Client
}

// login signs in as the admin and returns its access token.
func (s shopAPI) login(ctx context.Context, email, password string) (string, error) {
	if email == "" || password == "" {
		return "", errors.New("pay: BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD name the admin to read the order as")
	}
	creds, err := json.Marshal(map[string]string{"email": email, "password": password})
	if err != nil {
		return "", fmt.Errorf("log in: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/auth/login", bytes.NewReader(creds))
	if err != nil {
		return "", fmt.Errorf("log in: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	body, err := s.do(req)
	if err != nil {
		return "", fmt.Errorf("log in as %s: %w", email, err)
	}
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("log in as %s: no token in the answer", email)
	}
	return tok.AccessToken, nil
}

func (s shopAPI) order(ctx context.Context, id string) (payOrder, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/orders/"+url.PathEscape(id), nil)
	if err != nil {
		return payOrder{}, fmt.Errorf("get order %s: %w", id, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	body, err := s.do(req)
	if err != nil {
		return payOrder{}, fmt.Errorf("get order %s: %w", id, err)
	}
	var o payOrder
	if err := json.Unmarshal(body, &o); err != nil {
		return payOrder{}, fmt.Errorf("get order %s: decode: %w", id, err)
	}
	return o, nil
}

func (s shopAPI) deliver(ctx context.Context, payload []byte, signature string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/webhooks/stripe", bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("send webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signature)
	if _, err := s.do(req); err != nil {
		return fmt.Errorf("send webhook: %w", err)
	}
	return nil
}

// do returns the body of a 2xx answer; any other is an error carrying it.
func (s shopAPI) do(req *http.Request) ([]byte, error) {
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is the server running? `make run` starts it)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	err = fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(body))
	if resp.StatusCode == http.StatusUnauthorized {
		err = fmt.Errorf("%w (does the server's admin have BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD?)", err)
	}
	return nil, err
}
