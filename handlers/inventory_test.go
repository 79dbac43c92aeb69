package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/internal/shoptest"
)

// ledger returns a product's whole inventory ledger, newest first.
func (a *api) ledger(t *testing.T, adminToken, productID string) []gen.InventoryTransaction {
	t.Helper()
	var all []gen.InventoryTransaction
	path := "/v1/products/" + productID + "/inventory-transactions?limit=100"
	for range 100 {
		var page gen.InventoryTransactionList
		a.do(t, http.MethodGet, path, adminToken, nil).want(t, http.StatusOK).decode(t, &page)
		all = append(all, page.Items...)
		if page.NextCursor.IsNull() {
			return all
		}
		path = "/v1/products/" + productID + "/inventory-transactions?limit=100&cursor=" + page.NextCursor.MustGet()
	}
	t.Fatal("more than 100 ledger pages")
	return nil
}

// stock reads a product's stock through the API.
func (a *api) stock(t *testing.T, adminToken, productID string) int32 {
	t.Helper()
	var p gen.Product
	a.do(t, http.MethodGet, "/v1/products/"+productID, adminToken, nil).want(t, http.StatusOK).decode(t, &p)
	return p.Stock
}

func TestAdjustInventory(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)

	t.Run("restock", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"stock": 10})
		var ch gen.InventoryChange
		a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin, map[string]any{
			"quantityChange": 5, "type": "restock", "note": "PO-1",
		}).want(t, http.StatusCreated).decode(t, &ch)
		tx := ch.Transaction
		if ch.Stock != 15 || ch.ProductId != p.Id || tx.Type != gen.InventoryTransactionTypeRestock ||
			tx.QuantityChange != 5 || tx.StockAfter != 15 || tx.Sku != p.Sku || tx.Note.MustGet() != "PO-1" || !tx.ReferenceId.IsNull() {
			t.Errorf("restock answered %+v", ch)
		}
		if s := a.stock(t, admin, p.Id); s != 15 {
			t.Errorf("stock = %d, want 15", s)
		}
		l := a.ledger(t, admin, p.Id)
		if len(l) != 2 {
			t.Fatalf("ledger has %d entries, want the opening stock and the restock: %+v", len(l), l)
		}
		if l[0].Id != tx.Id || l[0].StockAfter != 15 {
			t.Errorf("newest entry = %+v, want the restock %s", l[0], tx.Id)
		}
		if o := l[1]; o.Type != gen.InventoryTransactionTypeRestock || o.QuantityChange != 10 || o.StockAfter != 10 {
			t.Errorf("opening entry = %+v, want restock +10 -> 10", o)
		}
		if l[0].CreatedAt.Before(l[1].CreatedAt) {
			t.Errorf("ledger not newest first: %v before %v", l[0].CreatedAt, l[1].CreatedAt)
		}
	})

	t.Run("no opening entry for zero stock", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"stock": 0})
		if l := a.ledger(t, admin, p.Id); len(l) != 0 {
			t.Errorf("ledger = %+v, want empty", l)
		}
		a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin, map[string]any{"quantityChange": 2, "type": "return"}).
			want(t, http.StatusCreated)
		if s := a.stock(t, admin, p.Id); s != 2 {
			t.Errorf("stock = %d after a return of 2", s)
		}
	})

	t.Run("adjustment below zero", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"stock": 3})
		expectProblem(t, a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin,
			map[string]any{"quantityChange": -4, "type": "adjustment"}), http.StatusConflict)
		if s := a.stock(t, admin, p.Id); s != 3 {
			t.Errorf("stock = %d after a refused adjustment, want 3", s)
		}
		if l := a.ledger(t, admin, p.Id); len(l) != 1 {
			t.Errorf("ledger has %d entries after a refused adjustment, want 1", len(l))
		}
		// Down to exactly zero is fine.
		var ch gen.InventoryChange
		a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin,
			map[string]any{"quantityChange": -3, "type": "adjustment"}).want(t, http.StatusCreated).decode(t, &ch)
		if ch.Stock != 0 || ch.Transaction.StockAfter != 0 || ch.Transaction.Type != gen.InventoryTransactionTypeAdjustment {
			t.Errorf("adjustment to zero answered %+v", ch)
		}
	})

	t.Run("beyond the largest stock", func(t *testing.T) {
		t.Parallel()
		// Stock is an int32 in the API; a restock past it is refused, not a 500.
		p := a.product(t, admin, map[string]any{"stock": 0})
		if _, err := a.Store.DB().Exec(`UPDATE products SET stock = 2147483000 WHERE id = $1`, p.Id); err != nil {
			t.Fatal(err)
		}
		r := a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin, map[string]any{"quantityChange": 1000, "type": "restock"})
		expectProblem(t, r, http.StatusConflict)
		if s := a.stock(t, admin, p.Id); s != 2147483000 {
			t.Errorf("stock = %d after a refused restock", s)
		}
	})

	t.Run("archived product keeps its ledger", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"stock": 3})
		a.do(t, http.MethodDelete, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK)
		if l := a.ledger(t, admin, p.Id); len(l) != 1 {
			t.Errorf("archived product's ledger = %+v", l)
		}
	})

	invalid := []struct {
		name string
		body any
	}{
		{"restock with a negative quantity", map[string]any{"quantityChange": -2, "type": "restock"}},
		{"return with a negative quantity", map[string]any{"quantityChange": -2, "type": "return"}},
		{"zero", map[string]any{"quantityChange": 0, "type": "adjustment"}},
		{"sale is not manual", map[string]any{"quantityChange": -1, "type": "sale"}},
		{"missing type", map[string]any{"quantityChange": 1}},
		{"fractional quantity", map[string]any{"quantityChange": 1.5, "type": "restock"}},
		{"unknown field", map[string]any{"quantityChange": 1, "type": "restock", "stockAfter": 11}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := a.product(t, admin, map[string]any{"stock": 10})
			prob := expectProblem(t, a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin, tc.body), http.StatusBadRequest)
			if len(prob.Errors) == 0 {
				t.Errorf("no errors in %+v", prob)
			}
			if s := a.stock(t, admin, p.Id); s != 10 {
				t.Errorf("stock = %d after a rejected change", s)
			}
			if l := a.ledger(t, admin, p.Id); len(l) != 1 {
				t.Errorf("ledger has %d entries after a rejected change", len(l))
			}
		})
	}

	t.Run("unknown product", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{uuid.NewString(), "nope"} {
			expectProblem(t, a.do(t, http.MethodPost, "/v1/products/"+id+"/inventory", admin,
				map[string]any{"quantityChange": 1, "type": "restock"}), http.StatusNotFound)
			expectProblem(t, a.do(t, http.MethodGet, "/v1/products/"+id+"/inventory-transactions", admin, nil), http.StatusNotFound)
		}
	})
}

func TestInventoryLedgerPages(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"stock": 1})
	for range 4 {
		a.do(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin, map[string]any{"quantityChange": 1, "type": "restock"}).
			want(t, http.StatusCreated)
	}
	var ids []string
	path := "/v1/products/" + p.Id + "/inventory-transactions?limit=2"
	for range 5 {
		var page gen.InventoryTransactionList
		a.do(t, http.MethodGet, path, admin, nil).want(t, http.StatusOK).decode(t, &page)
		for _, tx := range page.Items {
			ids = append(ids, tx.Id)
		}
		if page.NextCursor.IsNull() {
			break
		}
		path = "/v1/products/" + p.Id + "/inventory-transactions?limit=2&cursor=" + page.NextCursor.MustGet()
	}
	all := a.ledger(t, admin, p.Id)
	if len(ids) != 5 || len(all) != 5 {
		t.Fatalf("paged %d entries, listed %d, want 5", len(ids), len(all))
	}
	for i := range all {
		if ids[i] != all[i].Id {
			t.Errorf("entry %d: paged %s, listed %s", i, ids[i], all[i].Id)
		}
		if want := int32(5 - i); all[i].StockAfter != want {
			t.Errorf("entry %d: stockAfter %d, want %d (newest first)", i, all[i].StockAfter, want)
		}
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/products/"+p.Id+"/inventory-transactions?cursor=garbage!", admin, nil), http.StatusBadRequest)
}

func TestConcurrentAdjustmentsNeverOversell(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"stock": 10})

	const workers = 20
	statuses := make([]int, workers)
	shoptest.Concurrently(t, workers, 60*time.Second, func(i int) {
		req := a.request(t, http.MethodPost, "/v1/products/"+p.Id+"/inventory", admin,
			map[string]any{"quantityChange": -1, "type": "adjustment"})
		r, err := a.roundTrip(t, req)
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
			return
		}
		statuses[i] = r.status
	})

	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 10 || count[http.StatusConflict] != 10 {
		t.Errorf("statuses = %v, want 10 x 201 and 10 x 409", count)
	}
	if s := a.stock(t, admin, p.Id); s != 0 {
		t.Errorf("final stock = %d, want 0", s)
	}
	l := a.ledger(t, admin, p.Id)
	sum := 0
	after := map[int32]bool{}
	for _, tx := range l {
		sum += int(tx.QuantityChange)
		if tx.Type == gen.InventoryTransactionTypeAdjustment {
			after[tx.StockAfter] = true
		}
	}
	if sum != 0 || len(l) != 11 {
		t.Errorf("ledger: %d entries summing to %d, want 11 summing to the stock 0", len(l), sum)
	}
	if len(after) != 10 {
		t.Errorf("adjustments left %d distinct stock levels, want 10 (9..0): %v", len(after), after)
	}
}
