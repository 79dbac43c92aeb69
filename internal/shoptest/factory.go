package shoptest

import (
	"cmp"
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/store"
)

// The builders below follow River's testfactory: a nil opts gives a valid
// row with unique keys, and every field of opts that is set replaces its
// default. Fields whose zero value is meaningful (a stock of 0, an
// inactive product) are pointers; set them with new(v).

// UserOpts overrides the defaults of User.
type UserOpts struct {
	Email        string // default: a unique user-…@example.com
	PasswordHash string // default: "x", which no password matches
	Role         string // default: "customer"
	FirstName    string // default: "Ada"
	LastName     string // default: "Lovelace"
	Phone        *string
}

// User inserts a user through the store and returns it; a failure ends the
// test.
func User(ctx context.Context, t testing.TB, st *store.Store, opts *UserOpts) store.User {
	t.Helper()
	if opts == nil {
		opts = &UserOpts{}
	}
	u, err := st.CreateUser(ctx, store.NewUser{
		Email:        cmp.Or(opts.Email, "user-"+uuid.NewString()+"@example.com"),
		PasswordHash: cmp.Or(opts.PasswordHash, "x"),
		Role:         cmp.Or(opts.Role, "customer"),
		FirstName:    cmp.Or(opts.FirstName, "Ada"),
		LastName:     cmp.Or(opts.LastName, "Lovelace"),
		Phone:        opts.Phone,
	})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// ProductOpts overrides the defaults of Product.
type ProductOpts struct {
	SKU                 string // default: a unique SKU-XXXXXXXX
	Name                string // default: "Product"
	Description         string
	PriceCents          int64 // default: 1000 (a price is never 0)
	CompareAtPriceCents *int64
	CostPriceCents      *int64
	Currency            string // default: the store's (usd)
	Category            *string
	Tags                []string
	Stock               *int  // default: 10
	LowStockThreshold   *int  // default: 10, as the API's
	IsActive            *bool // default: true
	IsFeatured          bool
	WeightGrams         *int
	Dimensions          *store.Dimensions
	ActorID             string // who created it, on its opening ledger row; default: nobody
}

// Product inserts a product (and, for opening stock, its ledger row)
// through the store and returns it; a failure ends the test.
func Product(ctx context.Context, t testing.TB, st *store.Store, opts *ProductOpts) store.Product {
	t.Helper()
	if opts == nil {
		opts = &ProductOpts{}
	}
	p, err := st.CreateProduct(ctx, store.NewProduct{
		SKU:                 cmp.Or(opts.SKU, "SKU-"+strings.ToUpper(uuid.NewString()[:8])),
		Name:                cmp.Or(opts.Name, "Product"),
		Description:         opts.Description,
		PriceCents:          cmp.Or(opts.PriceCents, 1000),
		CompareAtPriceCents: opts.CompareAtPriceCents,
		CostPriceCents:      opts.CostPriceCents,
		Currency:            opts.Currency,
		Category:            opts.Category,
		Tags:                opts.Tags,
		Stock:               orPtr(opts.Stock, 10),
		LowStockThreshold:   orPtr(opts.LowStockThreshold, 10),
		IsActive:            orPtr(opts.IsActive, true),
		IsFeatured:          opts.IsFeatured,
		WeightGrams:         opts.WeightGrams,
		Dimensions:          opts.Dimensions,
	}, opts.ActorID)
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

// orPtr is *v, or def when v is nil.
func orPtr[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

const stockSQL = `SELECT stock FROM products WHERE id = $1`

// Stock is the product's stock as the database holds it, archived or not;
// a failure ends the test.
func Stock(ctx context.Context, t testing.TB, st *store.Store, productID string) int {
	t.Helper()
	var n int
	if err := st.DB().GetContext(ctx, &n, stockSQL, productID); err != nil {
		t.Fatalf("stock of %s: %v", productID, err)
	}
	return n
}
