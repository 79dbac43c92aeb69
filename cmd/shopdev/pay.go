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

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/server"
)

const payUsage = `usage: shopdev pay [--url BASE_URL] ORDER_ID

Marks an order paid on a running shopd by sending it the webhook Stripe
would: a payment_intent.succeeded for the order's intent, amount and
currency, signed with STRIPE_WEBHOOK_SECRET (default: shopdev's). For local
runs on stripe-mock, which never sends webhooks. The server is BASE_URL,
else the one shopdev recorded in DATA_DIR/server-url, else http://HTTP_ADDR;
the admin token it needs is signed with the server's own key
(JWT_PRIVATE_KEY_FILE, else shopdev's under DATA_DIR).`

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
	token, err := payToken(cfg)
	if err != nil {
		return err
	}
	shop := shopAPI{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 15 * time.Second}}
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

// payToken is a short-lived admin token signed with the server's key.
func payToken(cfg server.Config) (string, error) {
	key, err := cfg.SigningKey()
	if err != nil {
		return "", err
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{
		Key: key, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		// Only this run uses it.
		TTL: 5 * time.Minute,
	})
	if err != nil {
		return "", err
	}
	return tokens.Issue("shopdev-pay", auth.RoleAdmin)
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
		err = fmt.Errorf("%w (is the server using the same JWT_PRIVATE_KEY_FILE or DATA_DIR, JWT_ISSUER and JWT_AUDIENCE?)", err)
	}
	return nil, err
}
