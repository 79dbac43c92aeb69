package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stripeStandIn answers the two Stripe calls a checkout makes (create a
// customer, create a PaymentIntent) after a configurable latency, with the
// smallest bodies stripe-go accepts, and replays an answer for a repeated
// Idempotency-Key as Stripe does. It stands in for Stripe's own latency at
// almost no CPU, unlike stripe-mock, which validates every request against
// Stripe's whole OpenAPI document: with it the bench measures what waiting
// on Stripe costs the server, not what stripe-mock costs the machine.
type stripeStandIn struct {
	URL     string
	latency atomic.Int64 // nanoseconds
	srv     *http.Server

	mu      sync.Mutex
	answers map[string][]byte // path + Idempotency-Key -> body
}

func startStripeStandIn() (*stripeStandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stripeStandIn{URL: "http://" + ln.Addr().String(), answers: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/customers", s.answer(func(r *http.Request) any {
		return map[string]any{"id": "cus_" + randomID(), "object": "customer", "email": r.PostForm.Get("email")}
	}))
	mux.HandleFunc("POST /v1/payment_intents", s.answer(func(r *http.Request) any {
		id := "pi_" + randomID()
		amount, _ := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
		return map[string]any{
			"id": id, "object": "payment_intent", "amount": amount, "currency": r.PostForm.Get("currency"),
			"client_secret": id + "_secret_" + randomID(), "status": "requires_payment_method",
			"metadata": map[string]string{"orderId": r.PostForm.Get("metadata[orderId]")},
		}
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"the bench's Stripe stand-in answers only POST /v1/customers and /v1/payment_intents"}}`))
	})
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

// setLatency sets the delay of every later answer.
func (s *stripeStandIn) setLatency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *stripeStandIn) answer(create func(r *http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if d := time.Duration(s.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		key := r.URL.Path + "\x00" + r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		body, replay := s.answers[key]
		if !replay {
			body, _ = json.Marshal(create(r))
			if r.Header.Get("Idempotency-Key") != "" {
				s.answers[key] = body
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

func (s *stripeStandIn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
