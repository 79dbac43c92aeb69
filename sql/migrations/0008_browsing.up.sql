-- Browsing: every product list sort walks an index in its keyset order, so
-- the first page (and every later one) reads only the rows it returns plus
-- those its filters skip, never the whole catalog.

-- price_asc walks it forwards, price_desc backwards; id breaks price ties.
CREATE INDEX products_price_idx ON products (price_cents, id) WHERE is_active;

-- sort=name; id breaks name ties.
CREATE INDEX products_name_idx ON products (name, id) WHERE is_active;

-- featured=true and inStock=true under the default sort (newest): the
-- storefront's home page and "available now" lists, where the matching rows
-- may be few and scattered through the listing index.
CREATE INDEX products_featured_idx ON products (created_at DESC, id DESC) WHERE is_active AND is_featured;
CREATE INDEX products_in_stock_idx ON products (created_at DESC, id DESC) WHERE is_active AND stock > 0;

-- Admins' status=archived|all (the listing index holds active products only).
CREATE INDEX products_all_listing_idx ON products (created_at DESC, id DESC);

-- A category page under the other sorts (newest has products_category_idx):
-- the storefront's most common filter, so it is an index condition rather
-- than a filter over the whole sort order.
CREATE INDEX products_category_price_idx ON products (category, price_cents, id) WHERE is_active;
CREATE INDEX products_category_name_idx ON products (category, name, id) WHERE is_active;
