package store

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/shopd/shopd"
)

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page asks for one page of a keyset-paginated list.
type Page struct {
	Limit  int
	Cursor string // opaque; "" for the first page
}

// keyset is the position after the last row of a page: lists are ordered by
// (time, id) descending, which is total and stable under inserts.
type keyset struct {
	T  time.Time `json:"t"`
	ID string    `json:"i"`
}

func (k keyset) encode() string {
	b, _ := json.Marshal(k)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = shopd.FieldError("cursor", "The cursor is not valid; use nextCursor from a previous page.")

// afterTimeID decodes a cursor over (time, uuid) into query arguments: both
// nil for the first page.
func afterTimeID(c string) (*time.Time, *string, error) {
	k, err := decodeCursor(c)
	if err != nil || k == nil {
		return nil, nil, err
	}
	if !validID(k.ID) {
		return nil, nil, errBadCursor
	}
	return &k.T, &k.ID, nil
}

// afterSeq decodes a cursor over a bigint id: nil for the first page.
func afterSeq(c string) (*int64, error) {
	k, err := decodeCursor(c)
	if err != nil || k == nil {
		return nil, err
	}
	n, err := strconv.ParseInt(k.ID, 10, 64)
	if err != nil {
		return nil, errBadCursor
	}
	return &n, nil
}

// decodeCursor returns the keyset in c, or nil for the first page.
func decodeCursor(c string) (*keyset, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	var k keyset
	if err == nil {
		err = json.Unmarshal(b, &k)
	}
	if err != nil || k.ID == "" {
		return nil, errBadCursor
	}
	return &k, nil
}

func (p Page) limit() int {
	if p.Limit <= 0 {
		return DefaultLimit
	}
	if p.Limit > MaxLimit {
		return MaxLimit
	}
	return p.Limit
}

// pageOf trims rows fetched with limit+1 to the page and returns the cursor
// of the next page, or "" at the end.
func pageOf[T any](rows []T, limit int, key func(T) keyset) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, key(rows[limit-1]).encode()
}
