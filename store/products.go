package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// Product is a catalog entry. Stock moves only through AdjustStock and
// checkout, never through an update.
type Product struct {
	ID                  string         `db:"id"`
	SKU                 string         `db:"sku"`
	Name                string         `db:"name"`
	Description         string         `db:"description"`
	PriceCents          int64          `db:"price_cents"`
	CompareAtPriceCents *int64         `db:"compare_at_price_cents"`
	CostPriceCents      *int64         `db:"cost_price_cents"`
	Currency            string         `db:"currency"`
	Category            *string        `db:"category"`
	Tags                pq.StringArray `db:"tags"`
	Stock               int            `db:"stock"`
	LowStockThreshold   int            `db:"low_stock_threshold"`
	IsActive            bool           `db:"is_active"`
	IsFeatured          bool           `db:"is_featured"`
	WeightGrams         *int           `db:"weight_grams"`
	LengthMm            *int           `db:"length_mm"`
	WidthMm             *int           `db:"width_mm"`
	HeightMm            *int           `db:"height_mm"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
	// Images come with the product where the query reads them too
	// (Product does); elsewhere Images.Loaded is false.
	Images ProductImageList `db:"images"`
	// Version moves on with every change to the product or its images
	// (migration 0015); only Product reads it, elsewhere it is 0.
	Version int64 `db:"version"`
}

// Dimensions are a parcel's size in millimetres.
type Dimensions struct{ LengthMm, WidthMm, HeightMm int }

// NewProduct is what creating a product stores.
type NewProduct struct {
	SKU                 string
	Name                string
	Description         string
	PriceCents          int64
	CompareAtPriceCents *int64
	CostPriceCents      *int64
	Currency            string
	Category            *string
	Tags                []string
	Stock               int
	LowStockThreshold   int
	IsActive            bool
	IsFeatured          bool
	WeightGrams         *int
	Dimensions          *Dimensions
}

const productColumns = `id, sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
	currency, category, tags, stock, low_stock_threshold, is_active, is_featured,
	weight_grams, length_mm, width_mm, height_mm, created_at, updated_at`

const insertProductSQL = `
WITH p AS (
	INSERT INTO products (sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
		currency, category, tags, stock, low_stock_threshold, is_active, is_featured,
		weight_grams, length_mm, width_mm, height_mm)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
	RETURNING ` + productColumns + `
), opening AS (
	INSERT INTO inventory_transactions (product_id, sku, quantity_change, type, stock_after, note, created_by)
	SELECT id, sku, stock, 'restock', stock, 'opening stock', $18
	FROM p
	WHERE stock > 0
)
SELECT ` + productColumns + ` FROM p`

// CreateProduct stores a product and, for non-zero opening stock, its first
// ledger row, so the ledger always sums to the stock. A taken SKU is EDuplicate.
func (s *Store) CreateProduct(ctx context.Context, np NewProduct, actorID string) (Product, error) {
	if np.Currency == "" {
		np.Currency = "usd"
	}
	if np.Tags == nil {
		np.Tags = []string{}
	}
	var l, w, h *int
	if d := np.Dimensions; d != nil {
		l, w, h = &d.LengthMm, &d.WidthMm, &d.HeightMm
	}
	var p Product
	err := s.db.GetContext(ctx, &p, insertProductSQL,
		np.SKU, np.Name, np.Description, np.PriceCents, np.CompareAtPriceCents, np.CostPriceCents,
		np.Currency, np.Category, pq.StringArray(np.Tags), np.Stock, np.LowStockThreshold, np.IsActive, np.IsFeatured,
		np.WeightGrams, l, w, h, nullID(actorID))
	if err != nil {
		return Product{}, fmt.Errorf("create product: %w", translate(err))
	}
	return p, nil
}

// productNotFound is the answer for a product that does not exist (or is
// hidden from the caller).
func productNotFound(id string) error {
	return shopd.Errorf(shopd.ENotFound, "Product %s not found.", id)
}

const productByIDSQL = `SELECT ` + productColumns + `, version,
	(SELECT coalesce(json_agg(i ORDER BY i.position), '[]') FROM product_images i WHERE i.product_id = products.id) AS images
FROM products WHERE id = $1`

// Product returns a product. An archived one is ENotFound unless
// includeArchived.
func (s *Store) Product(ctx context.Context, id string, includeArchived bool) (Product, error) {
	notFound := productNotFound(id)
	if !validID(id) {
		return Product{}, notFound
	}
	var p Product
	if err := s.db.GetContext(ctx, &p, productByIDSQL, id); err != nil {
		err = translate(err)
		if shopd.ErrorCode(err) == shopd.ENotFound {
			return Product{}, notFound
		}
		return Product{}, fmt.Errorf("get product: %w", err)
	}
	if !p.IsActive && !includeArchived {
		return Product{}, notFound
	}
	return p, nil
}

// Product list orders (ProductFilter.Sort).
const (
	SortNewest    = "newest"
	SortPriceAsc  = "price_asc"
	SortPriceDesc = "price_desc"
	SortName      = "name"
)

// Product list statuses (ProductFilter.Status); only admins ask for other
// than active.
const (
	StatusActive   = "active"
	StatusArchived = "archived"
	StatusAll      = "all"
)

// ProductFilter narrows and orders ListProducts.
type ProductFilter struct {
	Category string
	// Query matches name, description and SKU, case-insensitively.
	Query string
	// Sort is one of the Sort constants; "" is SortNewest.
	Sort string
	// MinPriceCents and MaxPriceCents bound the price, inclusively.
	MinPriceCents *int64
	MaxPriceCents *int64
	// InStock keeps products with stock left; Featured featured ones.
	InStock  bool
	Featured bool
	// Status is one of the Status constants; "" is StatusActive.
	Status string
}

// key names the filter a cursor was made for: a cursor of another filter
// or sort would skip or repeat rows, so it is refused.
func (f ProductFilter) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%v|%v|%t|%t|%s", f.Category, strings.TrimSpace(f.Query),
		ptrString(f.MinPriceCents), ptrString(f.MaxPriceCents), f.InStock, f.Featured, f.Status)
	return hex.EncodeToString(h.Sum(nil)[:6])
}

func ptrString(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

// productCursor is the position after the last product of a page, in the
// sort it was made for: the sort key and the id, which breaks ties, so the
// order is total and stable under inserts.
type productCursor struct {
	Sort   string     `json:"s"`
	Filter string     `json:"f"`
	Price  int64      `json:"p,omitempty"`
	Name   string     `json:"n,omitempty"`
	T      *time.Time `json:"t,omitempty"`
	ID     string     `json:"i"`
}

func (c productCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadProductCursor = shopd.FieldError("cursor", "The cursor is not valid for this sort and these filters; use nextCursor from a previous page of the same list.")

// productListWhere is shared by every sort; $9 (the sort key, typed by
// each sort's query) and $10 (the id) are the cursor's position.
const productListWhere = `
FROM products
WHERE CASE $8 WHEN 'all' THEN true WHEN 'archived' THEN NOT is_active ELSE is_active END
	AND ($1 = '' OR category = $1)
	AND ($2 = '' OR search_text LIKE lower($2))
	AND ($3::bigint IS NULL OR price_cents >= $3)
	AND ($4::bigint IS NULL OR price_cents <= $4)
	AND (NOT $5 OR stock > 0)
	AND (NOT $6 OR is_featured)`

// One query per sort, so each is served by its own index (migration 0008).
const (
	listProductsNewestSQL = `SELECT ` + productColumns + productListWhere + `
	AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7`
	listProductsPriceAscSQL = `SELECT ` + productColumns + productListWhere + `
	AND ($9::bigint IS NULL OR (price_cents, id) > ($9, $10::uuid))
ORDER BY price_cents, id
LIMIT $7`
	listProductsPriceDescSQL = `SELECT ` + productColumns + productListWhere + `
	AND ($9::bigint IS NULL OR (price_cents, id) < ($9, $10::uuid))
ORDER BY price_cents DESC, id DESC
LIMIT $7`
	listProductsNameSQL = `SELECT ` + productColumns + productListWhere + `
	AND ($9::text IS NULL OR (name, id) > ($9, $10::uuid))
ORDER BY name, id
LIMIT $7`
)

var listProductsSQL = map[string]string{
	SortNewest:    listProductsNewestSQL,
	SortPriceAsc:  listProductsPriceAscSQL,
	SortPriceDesc: listProductsPriceDescSQL,
	SortName:      listProductsNameSQL,
}

// ListProducts returns one page of products in the filter's sort and the
// cursor of the next page ("" at the end). A cursor made for another sort
// or filter is EInvalid.
func (s *Store) ListProducts(ctx context.Context, f ProductFilter, pg Page) ([]Product, string, error) {
	if f.Sort == "" {
		f.Sort = SortNewest
	}
	if f.Status == "" {
		f.Status = StatusActive
	}
	q, ok := listProductsSQL[f.Sort]
	if !ok {
		return nil, "", shopd.FieldError("sort", "Must be one of newest, price_asc, price_desc, name.")
	}
	switch f.Status {
	case StatusActive, StatusArchived, StatusAll:
	default:
		return nil, "", shopd.FieldError("status", "Must be one of active, archived, all.")
	}
	filterKey := f.key()
	var after any // the cursor's sort key: nil on the first page
	var id *string
	if pg.Cursor != "" {
		c, err := decodeProductCursor(pg.Cursor)
		if err != nil || c.Sort != f.Sort || c.Filter != filterKey || !validID(c.ID) {
			return nil, "", errBadProductCursor
		}
		id = &c.ID
		switch f.Sort {
		case SortNewest:
			if c.T == nil {
				return nil, "", errBadProductCursor
			}
			after = *c.T
		case SortName:
			after = c.Name
		default:
			after = c.Price
		}
	}
	pattern := ""
	if q := strings.TrimSpace(f.Query); q != "" {
		// Lower-cased by PostgreSQL, like search_text, so both agree under
		// any collation.
		pattern = "%" + escapeLike(q) + "%"
	}
	limit := pg.limit()
	rows := make([]Product, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, q, f.Category, pattern, f.MinPriceCents, f.MaxPriceCents,
		f.InStock, f.Featured, limit+1, f.Status, after, id); err != nil {
		return nil, "", fmt.Errorf("list products: %w", translate(err))
	}
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	return rows, ProductCursor(f, rows[limit-1]), nil
}

// ProductCursor is the cursor ListProducts returns after the product p
// under f: for documentation examples and tests.
func ProductCursor(f ProductFilter, p Product) string {
	if f.Sort == "" {
		f.Sort = SortNewest
	}
	if f.Status == "" {
		f.Status = StatusActive
	}
	c := productCursor{Sort: f.Sort, Filter: f.key(), ID: p.ID}
	switch f.Sort {
	case SortNewest:
		t := p.CreatedAt
		c.T = &t
	case SortName:
		c.Name = p.Name
	default:
		c.Price = p.PriceCents
	}
	return c.encode()
}

func decodeProductCursor(s string) (productCursor, error) {
	var c productCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	return c, err
}

// Category is a category name and how many active products are in it.
type Category struct {
	Name         string `db:"category"`
	ProductCount int64  `db:"product_count"`
}

const categoriesSQL = `
SELECT category, count(*) AS product_count
FROM products
WHERE is_active AND category IS NOT NULL
GROUP BY category
ORDER BY category`

// Categories lists the categories of active products with their counts,
// by name.
func (s *Store) Categories(ctx context.Context) ([]Category, error) {
	out := []Category{}
	if err := s.db.SelectContext(ctx, &out, categoriesSQL); err != nil {
		return nil, fmt.Errorf("list categories: %w", translate(err))
	}
	return out, nil
}

// escapeLike makes s match literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Change is one field of a patch: Set says the field was given; a nil Value
// then clears a nullable column.
type Change[T any] struct {
	Set   bool
	Value *T
}

// ProductPatch holds the fields to change; nil pointers and unset Changes are
// left alone.
type ProductPatch struct {
	SKU                 *string
	Name                *string
	Description         *string
	PriceCents          *int64
	CompareAtPriceCents Change[int64]
	CostPriceCents      Change[int64]
	Currency            *string
	Category            Change[string]
	Tags                *[]string
	LowStockThreshold   *int
	IsActive            *bool
	IsFeatured          *bool
	WeightGrams         Change[int]
	Dimensions          Change[Dimensions]
}

// UpdateProduct applies the patch and returns the product as it now is.
// Unknown id is ENotFound; a taken SKU EDuplicate.
func (s *Store) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	if !validID(id) {
		return Product{}, productNotFound(id)
	}
	var sets []string
	var args []any
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if p.SKU != nil {
		set("sku", *p.SKU)
	}
	if p.Name != nil {
		set("name", *p.Name)
	}
	if p.Description != nil {
		set("description", *p.Description)
	}
	if p.PriceCents != nil {
		set("price_cents", *p.PriceCents)
	}
	if p.CompareAtPriceCents.Set {
		set("compare_at_price_cents", p.CompareAtPriceCents.Value)
	}
	if p.CostPriceCents.Set {
		set("cost_price_cents", p.CostPriceCents.Value)
	}
	if p.Currency != nil {
		set("currency", *p.Currency)
	}
	if p.Category.Set {
		set("category", p.Category.Value)
	}
	if p.Tags != nil {
		set("tags", pq.StringArray(*p.Tags))
	}
	if p.LowStockThreshold != nil {
		set("low_stock_threshold", *p.LowStockThreshold)
	}
	if p.IsActive != nil {
		set("is_active", *p.IsActive)
	}
	if p.IsFeatured != nil {
		set("is_featured", *p.IsFeatured)
	}
	if p.WeightGrams.Set {
		set("weight_grams", p.WeightGrams.Value)
	}
	if p.Dimensions.Set {
		var l, w, h *int
		if d := p.Dimensions.Value; d != nil {
			l, w, h = &d.LengthMm, &d.WidthMm, &d.HeightMm
		}
		set("length_mm", l)
		set("width_mm", w)
		set("height_mm", h)
	}
	sets = append(sets, "updated_at = now()")
	args = append(args, id)
	q := fmt.Sprintf("UPDATE products\nSET %s\nWHERE id = $%d\nRETURNING %s",
		strings.Join(sets, ",\n\t"), len(args), productColumns)
	var out Product
	if err := s.db.GetContext(ctx, &out, q, args...); err != nil {
		err = translate(err)
		if shopd.ErrorCode(err) == shopd.ENotFound {
			return Product{}, productNotFound(id)
		}
		return Product{}, fmt.Errorf("update product: %w", err)
	}
	return out, nil
}

// ArchiveProduct hides a product from the catalog and from new carts; its
// history (orders, ledger) stays.
func (s *Store) ArchiveProduct(ctx context.Context, id string) (Product, error) {
	inactive := false
	return s.UpdateProduct(ctx, id, ProductPatch{IsActive: &inactive})
}

// nullID turns "" into NULL for optional uuid columns.
func nullID(id string) *string {
	if id == "" {
		return nil
	}
	return &id
}
