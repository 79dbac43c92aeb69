package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/shopd/shopd"
)

// Ledger entry types an admin may write ("sale" and "release" rows are
// written by checkout and cancellation).
const (
	InventoryRestock    = "restock"
	InventoryAdjustment = "adjustment"
	InventoryReturn     = "return"
)

// InventoryTransaction is one row of the stock ledger.
type InventoryTransaction struct {
	ID             int64     `db:"id"`
	ProductID      string    `db:"product_id"`
	SKU            string    `db:"sku"`
	QuantityChange int       `db:"quantity_change"`
	Type           string    `db:"type"`
	StockAfter     int       `db:"stock_after"`
	ReferenceID    *string   `db:"reference_id"`
	Note           *string   `db:"note"`
	CreatedAt      time.Time `db:"created_at"`
}

const inventoryColumns = `id, product_id, sku, quantity_change, type, stock_after, reference_id, note, created_at`

// StockChange is a manual stock movement by an admin.
type StockChange struct {
	ProductID      string
	QuantityChange int
	Type           string // restock, adjustment or return
	Note           *string
	ActorID        string
}

// adjustStockSQL moves stock and writes the ledger row in one statement: the
// conditional UPDATE takes the row lock and refuses to go below zero or past
// the integer column (compared as bigint, so the check itself cannot overflow).
const adjustStockSQL = `
WITH p AS (
	UPDATE products
	SET stock = stock + $2, updated_at = now()
	WHERE id = $1
		AND stock::bigint + $2 BETWEEN 0 AND ` + maxStockSQL + `
	RETURNING id, sku, stock
)
INSERT INTO inventory_transactions (product_id, sku, quantity_change, type, stock_after, note, created_by)
SELECT id, sku, $2, $3, stock, $4, $5
FROM p
RETURNING ` + inventoryColumns

// maxStockSQL is the largest stock the integer column holds.
const maxStockSQL = "2147483647"

// AdjustStock applies a manual stock change and records it in the ledger.
// It returns ENotFound for an unknown product, EInvalid for a change that
// does not fit its type, and EConflict when stock would go negative or past
// the largest stock.
func (s *Store) AdjustStock(ctx context.Context, c StockChange) (InventoryTransaction, error) {
	switch {
	case c.QuantityChange == 0:
		return InventoryTransaction{}, shopd.FieldError("quantityChange", "Must not be zero.")
	case (c.Type == InventoryRestock || c.Type == InventoryReturn) && c.QuantityChange < 0:
		return InventoryTransaction{}, shopd.FieldError("quantityChange", "A %s adds stock: it must be positive.", c.Type)
	case c.Type != InventoryRestock && c.Type != InventoryReturn && c.Type != InventoryAdjustment:
		return InventoryTransaction{}, shopd.FieldError("type", "Must be restock, adjustment or return.")
	}
	if !validID(c.ProductID) {
		return InventoryTransaction{}, productNotFound(c.ProductID)
	}
	var tx InventoryTransaction
	err := s.db.GetContext(ctx, &tx, adjustStockSQL, c.ProductID, c.QuantityChange, c.Type, c.Note, nullID(c.ActorID))
	if errors.Is(err, sql.ErrNoRows) {
		p, perr := s.Product(ctx, c.ProductID, true)
		if perr != nil {
			return InventoryTransaction{}, perr
		}
		if c.QuantityChange > 0 {
			return InventoryTransaction{}, shopd.Errorf(shopd.EConflict,
				"Stock of %s is %d; a change of %d would take it past %s.", p.SKU, p.Stock, c.QuantityChange, maxStockSQL)
		}
		return InventoryTransaction{}, shopd.Errorf(shopd.EConflict,
			"Stock of %s is %d; a change of %d would make it negative.", p.SKU, p.Stock, c.QuantityChange)
	}
	if err != nil {
		return InventoryTransaction{}, fmt.Errorf("adjust stock: %w", translate(err))
	}
	return tx, nil
}

const listInventorySQL = `
SELECT ` + inventoryColumns + `
FROM inventory_transactions
WHERE product_id = $1
	AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3`

// InventoryTransactions returns one page of a product's ledger, newest
// first. Unknown product is ENotFound.
func (s *Store) InventoryTransactions(ctx context.Context, productID string, pg Page) ([]InventoryTransaction, string, error) {
	if _, err := s.Product(ctx, productID, true); err != nil {
		return nil, "", err
	}
	afterID, err := afterSeq(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pg.limit()
	rows := make([]InventoryTransaction, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, listInventorySQL, productID, afterID, limit+1); err != nil {
		return nil, "", fmt.Errorf("list inventory: %w", translate(err))
	}
	items, next := pageOf(rows, limit, func(t InventoryTransaction) keyset {
		return keyset{ID: strconv.FormatInt(t.ID, 10)}
	})
	return items, next, nil
}
