package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// api is a minimal JSON client for setting the bench up (not for load).
type api struct {
	base   string
	client *http.Client
}

// call sends body as JSON and decodes a want-status answer into out.
func (a api) call(ctx context.Context, method, path, token string, body, out any, want int) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d (want %d): %s", method, path, resp.StatusCode, want, truncate(string(b), 500))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func (a api) login(ctx context.Context, email, password string) (string, error) {
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	err := a.call(ctx, http.MethodPost, "/v1/auth/login", "",
		map[string]string{"email": email, "password": password}, &tok, http.StatusOK)
	return tok.AccessToken, err
}

// customer is one checkout client's account.
type customer struct {
	ID, Email, Token string
}

// fixture is what the scenarios run against.
type fixture struct {
	// catalogIDs are the seeded products' ids (get product walks them).
	catalogIDs []string
	// stockIDs are the high-stock products checkout buys, so it never runs
	// out; client i buys stockIDs[i%len].
	stockIDs []string
	// customers[i] is client i's account for the checkout scenario.
	customers []customer
}

// prepare reads the seeded catalog's ids, creates the high-stock products
// as the bootstrap admin and registers and logs in one customer per client.
func prepare(ctx context.Context, a api, clients, stockProducts int) (fixture, error) {
	var f fixture
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := a.call(ctx, http.MethodGet, "/v1/products?limit=100", "", nil, &page, http.StatusOK); err != nil {
		return f, err
	}
	for _, p := range page.Items {
		f.catalogIDs = append(f.catalogIDs, p.ID)
	}
	if len(f.catalogIDs) == 0 {
		return f, fmt.Errorf("the seeded catalog is empty")
	}

	admin, err := a.login(ctx, adminEmail, adminPassword)
	if err != nil {
		return f, fmt.Errorf("admin login: %w", err)
	}
	for i := range stockProducts {
		var p struct {
			ID string `json:"id"`
		}
		err := a.call(ctx, http.MethodPost, "/v1/products", admin, map[string]any{
			"sku":         fmt.Sprintf("BENCH-%03d", i+1),
			"name":        fmt.Sprintf("Bench Widget %d", i+1),
			"description": "High-stock product for the checkout benchmark.",
			"priceCents":  2500,
			"category":    "bench",
			"stock":       1_000_000,
		}, &p, http.StatusCreated)
		if err != nil {
			return f, fmt.Errorf("create bench product: %w", err)
		}
		f.stockIDs = append(f.stockIDs, p.ID)
	}

	// One at a time: each argon2id hash holds 7 MiB, and the heap the
	// server grows for several at once stays resident into the scenarios,
	// inflating their peak RSS (8 at a time: ~330 MiB instead of ~100).
	f.customers = make([]customer, clients)
	errs := make([]error, clients)
	sem := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c := customer{Email: fmt.Sprintf("bench-customer-%03d@example.com", i+1)}
			var me struct {
				ID string `json:"id"`
			}
			errs[i] = a.call(ctx, http.MethodPost, "/v1/auth/register", "", map[string]string{
				"email": c.Email, "password": customerPassword,
				"firstName": "Bench", "lastName": fmt.Sprintf("Customer %d", i+1),
			}, &me, http.StatusCreated)
			if errs[i] != nil {
				return
			}
			c.ID = me.ID
			c.Token, errs[i] = a.login(ctx, c.Email, customerPassword)
			f.customers[i] = c
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return f, fmt.Errorf("customer: %w", err)
		}
	}
	return f, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
