-- Product images: the bytes live in the blob store (BLOB_URL) under
-- blob_key, the thumbnail under thumbnail_key once the background job has
-- made it. Positions count from 0 without gaps; the unique constraint is
-- deferred so a reorder can shift several rows in one transaction.
CREATE TABLE product_images (
    id            uuid PRIMARY KEY,
    product_id    uuid NOT NULL REFERENCES products (id),
    blob_key      text NOT NULL,
    thumbnail_key text,
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    width         integer NOT NULL CHECK (width > 0),
    height        integer NOT NULL CHECK (height > 0),
    byte_size     integer NOT NULL CHECK (byte_size > 0),
    alt           text NOT NULL DEFAULT '',
    position      integer NOT NULL CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT product_images_position_key UNIQUE (product_id, position) DEFERRABLE INITIALLY DEFERRED
);

-- The URL array products were created with: always empty, now replaced by
-- product_images.
ALTER TABLE products DROP COLUMN images;
