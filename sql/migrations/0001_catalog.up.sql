-- Users, the catalog and its inventory ledger.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email              text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash      text NOT NULL,
    role               text NOT NULL CHECK (role IN ('customer', 'admin')),
    first_name         text NOT NULL,
    last_name          text NOT NULL,
    phone              text,
    stripe_customer_id text UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE products (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku                    text NOT NULL,
    name                   text NOT NULL,
    description            text NOT NULL DEFAULT '',
    price_cents            bigint NOT NULL CHECK (price_cents > 0),
    compare_at_price_cents bigint CHECK (compare_at_price_cents > 0),
    cost_price_cents       bigint CHECK (cost_price_cents >= 0),
    currency               text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    category               text,
    tags                   text[] NOT NULL DEFAULT '{}',
    images                 text[] NOT NULL DEFAULT '{}',
    stock                  integer NOT NULL CHECK (stock >= 0),
    low_stock_threshold    integer NOT NULL DEFAULT 10 CHECK (low_stock_threshold >= 0),
    is_active              boolean NOT NULL DEFAULT true,
    is_featured            boolean NOT NULL DEFAULT false,
    weight_grams           integer CHECK (weight_grams >= 0),
    length_mm              integer CHECK (length_mm > 0),
    width_mm               integer CHECK (width_mm > 0),
    height_mm              integer CHECK (height_mm > 0),
    -- What ?q= searches: lower-cased so one trigram index serves
    -- case-insensitive LIKE (the pattern is lower-cased too).
    search_text            text GENERATED ALWAYS AS (lower(name || ' ' || description || ' ' || sku)) STORED,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_sku_key UNIQUE (sku)
);

-- Keyset pagination walks (created_at, id) newest first.
CREATE INDEX products_listing_idx ON products (created_at DESC, id DESC) WHERE is_active;
CREATE INDEX products_category_idx ON products (category, created_at DESC, id DESC) WHERE is_active;
CREATE INDEX products_search_idx ON products USING gin (search_text gin_trgm_ops);

CREATE TABLE inventory_transactions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id      uuid NOT NULL REFERENCES products (id),
    sku             text NOT NULL,
    quantity_change integer NOT NULL CHECK (quantity_change <> 0),
    type            text NOT NULL CHECK (type IN ('sale', 'release', 'restock', 'adjustment', 'return')),
    stock_after     integer NOT NULL CHECK (stock_after >= 0),
    reference_id    text,
    note            text,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inventory_transactions_product_idx ON inventory_transactions (product_id, id DESC);
