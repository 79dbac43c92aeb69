package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// MaxProductImages is how many images one product may have.
const MaxProductImages = 10

// ProductImage is one image of a product. Its bytes are in the blob store
// under BlobKey; ThumbnailKey is nil until the thumbnail job has run.
// Positions count from 0 without gaps.
type ProductImage struct {
	ID           string    `db:"id" json:"id"`
	ProductID    string    `db:"product_id" json:"product_id"`
	BlobKey      string    `db:"blob_key" json:"blob_key"`
	ThumbnailKey *string   `db:"thumbnail_key" json:"thumbnail_key"`
	ContentType  string    `db:"content_type" json:"content_type"`
	Width        int       `db:"width" json:"width"`
	Height       int       `db:"height" json:"height"`
	ByteSize     int       `db:"byte_size" json:"byte_size"`
	Alt          string    `db:"alt" json:"alt"`
	Position     int       `db:"position" json:"position"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
}

// ProductImageList is a product's images as a query that reads the
// product brings them along (a json_agg of its product_images rows, in
// position order): one round trip for a product and its images. Loaded
// is false when the query did not bring them.
type ProductImageList struct {
	Items  []ProductImage
	Loaded bool
}

// Scan reads the json_agg column.
func (l *ProductImageList) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("product images: cannot scan %T", src)
	}
	l.Items = nil
	if err := json.Unmarshal(b, &l.Items); err != nil {
		return fmt.Errorf("product images: %w", err)
	}
	l.Loaded = true
	return nil
}

// NewProductImage is an uploaded image whose bytes are already stored.
type NewProductImage struct {
	ID          string
	ProductID   string
	BlobKey     string
	ContentType string
	Width       int
	Height      int
	ByteSize    int
	Alt         string
}

const productImageColumns = `id, product_id, blob_key, thumbnail_key, content_type, width, height, byte_size, alt, position, created_at`

// lockProductSQL serialises the changes of one product's images: uploads
// counted against the limit, reorders and deletes one after another.
const lockProductSQL = `SELECT id FROM products WHERE id = $1 FOR UPDATE`

const countProductImagesSQL = `SELECT count(*) FROM product_images WHERE product_id = $1`

const insertProductImageSQL = `
INSERT INTO product_images (id, product_id, blob_key, content_type, width, height, byte_size, alt, position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING ` + productImageColumns

// AddProductImage appends img after the product's images and runs also (a
// job insert, say) in the same transaction. The product's row is locked,
// so concurrent uploads are counted one after another. It returns
// ENotFound for an unknown product and EConflict when the product already
// has MaxProductImages.
func (s *Store) AddProductImage(ctx context.Context, img NewProductImage, also func(tx *sql.Tx) error) (ProductImage, error) {
	var out ProductImage
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		n, err := lockProductImages(ctx, tx, img.ProductID)
		if err != nil {
			return err
		}
		if n >= MaxProductImages {
			return shopd.Errorf(shopd.EConflict, "Product %s already has %d images, the most it may have; delete one first.", img.ProductID, MaxProductImages)
		}
		if err := tx.GetContext(ctx, &out, insertProductImageSQL, img.ID, img.ProductID, img.BlobKey,
			img.ContentType, img.Width, img.Height, img.ByteSize, img.Alt, n); err != nil {
			return translate(err)
		}
		if also != nil {
			return also(tx.Tx)
		}
		return nil
	})
	if err != nil {
		return ProductImage{}, fmt.Errorf("add product image: %w", err)
	}
	return out, nil
}

// lockProductImages locks the product's row and counts its images.
func lockProductImages(ctx context.Context, tx *sqlx.Tx, productID string) (int, error) {
	if !validID(productID) {
		return 0, productNotFound(productID)
	}
	var id string
	if err := tx.GetContext(ctx, &id, lockProductSQL, productID); err != nil {
		if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
			return 0, productNotFound(productID)
		}
		return 0, err
	}
	var n int
	if err := tx.GetContext(ctx, &n, countProductImagesSQL, productID); err != nil {
		return 0, err
	}
	return n, nil
}

const productImagesSQL = `
SELECT ` + productImageColumns + `
FROM product_images
WHERE product_id = ANY($1)
ORDER BY product_id, position`

// ProductImages returns the images of the given products, each product's
// in position order.
func (s *Store) ProductImages(ctx context.Context, productIDs ...string) (map[string][]ProductImage, error) {
	out := make(map[string][]ProductImage, len(productIDs))
	ids := make([]string, 0, len(productIDs))
	for _, id := range productIDs {
		if validID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []ProductImage
	if err := s.db.SelectContext(ctx, &rows, productImagesSQL, pq.StringArray(ids)); err != nil {
		return nil, fmt.Errorf("product images: %w", err)
	}
	for _, r := range rows {
		out[r.ProductID] = append(out[r.ProductID], r)
	}
	return out, nil
}

const productImageByIDSQL = `SELECT ` + productImageColumns + ` FROM product_images WHERE id = $1`

// ProductImageByID returns an image; ENotFound when there is none.
func (s *Store) ProductImageByID(ctx context.Context, id string) (ProductImage, error) {
	if !validID(id) {
		return ProductImage{}, imageNotFound(id)
	}
	var img ProductImage
	if err := s.db.GetContext(ctx, &img, productImageByIDSQL, id); err != nil {
		if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
			return ProductImage{}, imageNotFound(id)
		}
		return ProductImage{}, fmt.Errorf("product image: %w", err)
	}
	return img, nil
}

func imageNotFound(id string) error {
	return shopd.Errorf(shopd.ENotFound, "Image %s not found.", id)
}

// ProductImagePatch changes an image; nil fields stay as they are.
type ProductImagePatch struct {
	Alt      *string
	Position *int
}

const productImageForUpdateSQL = `
SELECT ` + productImageColumns + `
FROM product_images
WHERE id = $1 AND product_id = $2`

// Moving an image from $2 to $3 shifts the ones in between by one, towards
// its old place.
const shiftImagesUpSQL = `
UPDATE product_images
SET position = position + 1
WHERE product_id = $1 AND position >= $3 AND position < $2`

const shiftImagesDownSQL = `
UPDATE product_images
SET position = position - 1
WHERE product_id = $1 AND position > $2 AND position <= $3`

const updateProductImageSQL = `
UPDATE product_images
SET alt = $2, position = $3
WHERE id = $1
RETURNING ` + productImageColumns

// UpdateProductImage changes an image's alt text and position; the images
// between its old and new position shift by one, so positions stay
// distinct and without gaps. ENotFound for an unknown product or image (or
// one of another product), EInvalid for a position past the last image.
func (s *Store) UpdateProductImage(ctx context.Context, productID, imageID string, p ProductImagePatch) (ProductImage, error) {
	var out ProductImage
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		img, n, err := lockProductImage(ctx, tx, productID, imageID)
		if err != nil {
			return err
		}
		alt, pos := img.Alt, img.Position
		if p.Alt != nil {
			alt = *p.Alt
		}
		if p.Position != nil {
			pos = *p.Position
		}
		if pos < 0 || pos >= n {
			return shopd.FieldError("position", "Must be between 0 and %d: the product has %d images.", n-1, n)
		}
		switch {
		case pos < img.Position:
			_, err = tx.ExecContext(ctx, shiftImagesUpSQL, productID, img.Position, pos)
		case pos > img.Position:
			_, err = tx.ExecContext(ctx, shiftImagesDownSQL, productID, img.Position, pos)
		}
		if err != nil {
			return err
		}
		return tx.GetContext(ctx, &out, updateProductImageSQL, imageID, alt, pos)
	})
	if err != nil {
		return ProductImage{}, fmt.Errorf("update product image: %w", err)
	}
	return out, nil
}

// lockProductImage locks the product's row and reads one of its images and
// how many it has.
func lockProductImage(ctx context.Context, tx *sqlx.Tx, productID, imageID string) (ProductImage, int, error) {
	n, err := lockProductImages(ctx, tx, productID)
	if err != nil {
		return ProductImage{}, 0, err
	}
	if !validID(imageID) {
		return ProductImage{}, 0, imageNotFound(imageID)
	}
	var img ProductImage
	if err := tx.GetContext(ctx, &img, productImageForUpdateSQL, imageID, productID); err != nil {
		if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
			return ProductImage{}, 0, imageNotFound(imageID)
		}
		return ProductImage{}, 0, err
	}
	return img, n, nil
}

const deleteProductImageSQL = `DELETE FROM product_images WHERE id = $1`

// DeleteProductImage deletes an image's row and closes the gap it leaves;
// it returns the row, whose blobs the caller removes. ENotFound for an
// unknown product or image.
func (s *Store) DeleteProductImage(ctx context.Context, productID, imageID string) (ProductImage, error) {
	var img ProductImage
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if img, _, err = lockProductImage(ctx, tx, productID, imageID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deleteProductImageSQL, imageID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, shiftImagesDownSQL, productID, img.Position, MaxProductImages)
		return err
	})
	if err != nil {
		return ProductImage{}, fmt.Errorf("delete product image: %w", err)
	}
	return img, nil
}

// setImageThumbnailSQL locks the image's product first, as every other
// change of a product's images does: the change moves the product's
// version on (migration 0015), and taking the two rows in the other order
// could deadlock with an upload, reorder or delete.
const setImageThumbnailSQL = `
WITH product AS (
	SELECT p.id FROM products p
	WHERE p.id = (SELECT product_id FROM product_images WHERE id = $1)
	FOR UPDATE
)
UPDATE product_images
SET thumbnail_key = $2
WHERE id = $1 AND product_id IN (SELECT id FROM product)`

// SetImageThumbnail records an image's thumbnail. It reports false when
// the image no longer exists (deleted while the thumbnail was made): the
// caller then removes the thumbnail's blob.
func (s *Store) SetImageThumbnail(ctx context.Context, imageID, key string) (bool, error) {
	res, err := s.db.ExecContext(ctx, setImageThumbnailSQL, imageID, key)
	if err != nil {
		return false, fmt.Errorf("set image thumbnail: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("set image thumbnail: %w", err)
	}
	return n == 1, nil
}
