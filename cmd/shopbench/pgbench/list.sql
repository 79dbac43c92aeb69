-- list products: store/products.go listProductsSQL exactly as GET /v1/products?limit=20
-- runs it (first page, no category, no q): $1 = '', $2 = '', $3 = $4 = NULL, $5 = 21.
-- The server's driver sends those as bound parameters of an unnamed statement, which
-- PostgreSQL plans with the values, folding the same constants the literals fold here.
SELECT id, sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
	currency, category, tags, images, stock, low_stock_threshold, is_active, is_featured,
	weight_grams, length_mm, width_mm, height_mm, created_at, updated_at
FROM products
WHERE is_active
	AND ('' = '' OR category = '')
	AND ('' = '' OR search_text LIKE '')
	AND (NULL::timestamptz IS NULL OR (created_at, id) < (NULL::timestamptz, NULL::uuid))
ORDER BY created_at DESC, id DESC
LIMIT 21;
