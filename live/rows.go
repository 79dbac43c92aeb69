package live

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/store"
)

// eventRow is a stream_events row as the streams read it.
type eventRow struct {
	Xid               string         `db:"xid"`
	ID                uint64         `db:"id"`
	Type              string         `db:"type"`
	OrderID           sql.NullString `db:"order_id"`
	OrderNumber       sql.NullInt64  `db:"order_number"`
	Status            sql.NullString `db:"status"`
	PaymentStatus     sql.NullString `db:"payment_status"`
	FulfillmentStatus sql.NullString `db:"fulfillment_status"`
	ProductID         sql.NullString `db:"product_id"`
	SKU               sql.NullString `db:"sku"`
	Stock             sql.NullInt32  `db:"stock"`
	OccurredAt        time.Time      `db:"occurred_at"`
}

func (r eventRow) toEvent() (Event, error) {
	xid, err := strconv.ParseUint(r.Xid, 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("stream event %d: xid %q: %w", r.ID, r.Xid, err)
	}
	str := func(v sql.NullString) *string {
		if !v.Valid {
			return nil
		}
		return &v.String
	}
	e := Event{
		Cursor: Cursor{Xid: xid, ID: r.ID}, Type: r.Type,
		OrderID: str(r.OrderID), Status: str(r.Status), PaymentStatus: str(r.PaymentStatus),
		FulfillmentStatus: str(r.FulfillmentStatus), ProductID: str(r.ProductID), SKU: str(r.SKU),
		OccurredAt: r.OccurredAt,
	}
	if r.OrderNumber.Valid {
		n := store.Order{OrderNumber: r.OrderNumber.Int64}.Number()
		e.OrderNumber = &n
	}
	if r.Stock.Valid {
		n := int(r.Stock.Int32)
		e.Stock = &n
	}
	return e, nil
}

// settledEventsSQL reads, in stream order, the events after a cursor ($1,
// $2) and up to another ($3, $4), of one order when $5 is not null. Only
// settled rows: those of transactions older than every transaction of the
// database still running, which no later commit can precede (migration
// 0010, stream_horizon). An order's
// number is read from the order: a placed event is recorded before
// checkout numbers the order, in the same transaction.
const settledEventsSQL = `
SELECT s.xid::text AS xid, s.id, s.type, s.order_id, o.order_number, s.status, s.payment_status,
	s.fulfillment_status, s.product_id, s.sku, s.stock, s.occurred_at
FROM stream_events s
LEFT JOIN orders o ON o.id = s.order_id
WHERE (s.xid, s.id) > ($1::xid8, $2)
	AND (s.xid, s.id) <= ($3::xid8, $4)
	AND s.xid < (SELECT stream_horizon())
	%s
ORDER BY s.xid, s.id
LIMIT %d`

// pageSize bounds the rows one read holds in memory and hands out at once.
const pageSize = 250

// maxCursor is past every event.
var maxCursor = Cursor{Xid: 1<<63 - 1, ID: 1<<63 - 1}

var (
	allEventsSQL   = fmt.Sprintf(settledEventsSQL, "", pageSize)
	orderEventsSQL = fmt.Sprintf(settledEventsSQL, "AND s.order_id = $5::uuid", pageSize)
)

// readSettled returns up to pageSize settled events after from and up to
// upTo, of orderID's order when it is not "".
func readSettled(ctx context.Context, db sqlx.QueryerContext, orderID string, from, upTo Cursor) ([]Event, error) {
	args := []any{strconv.FormatUint(from.Xid, 10), from.ID, strconv.FormatUint(upTo.Xid, 10), upTo.ID}
	query := allEventsSQL
	if orderID != "" {
		query = orderEventsSQL
		args = append(args, orderID)
	}
	var rows []eventRow
	if err := sqlx.SelectContext(ctx, db, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("read stream events: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		e, err := r.toEvent()
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// unsettledSQL tells whether committed events wait for older transactions
// still running: the hub reads again shortly instead of at its next poll.
const unsettledSQL = `
SELECT EXISTS (
	SELECT 1
	FROM stream_events
	WHERE xid >= (SELECT stream_horizon())
)`

// headSQL is where a stream that starts now starts: every event of a
// transaction older than the oldest one running is in the past; every
// later one is to come.
const headSQL = `SELECT stream_horizon()::text`

// head reads the current head (see headSQL).
func head(ctx context.Context, db sqlx.QueryerContext) (Cursor, error) {
	var xmin string
	if err := sqlx.GetContext(ctx, db, &xmin, headSQL); err != nil {
		return Cursor{}, fmt.Errorf("read stream head: %w", err)
	}
	xid, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("read stream head: %q: %w", xmin, err)
	}
	return Cursor{Xid: xid}, nil
}

// issuedSQL tells whether a cursor's transaction ($1) has begun: the
// transaction of every event sent has. (Its row id is not checked: an id
// past those issued skips nothing but the rest of that one transaction.)
const issuedSQL = `SELECT $1::xid8 < pg_snapshot_xmax(pg_current_snapshot())`

// issued reports whether c's transaction has begun (see issuedSQL).
func issued(ctx context.Context, db sqlx.QueryerContext, c Cursor) (bool, error) {
	if c.Xid > math.MaxInt64 || c.ID > math.MaxInt64 {
		return false, nil // past any xid8 or bigint
	}
	var ok bool
	if err := sqlx.GetContext(ctx, db, &ok, issuedSQL, strconv.FormatUint(c.Xid, 10)); err != nil {
		return false, fmt.Errorf("check stream cursor: %w", err)
	}
	return ok, nil
}
