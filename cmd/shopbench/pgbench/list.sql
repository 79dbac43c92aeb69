-- list products: store/products.go listProductsNewestSQL exactly as GET /v1/products?limit=20
-- runs it (first page, no filters: $1 = $2 = '', $3 = $4 = NULL, $5 = $6 = false, $7 = 21,
-- $8 = 'active', $9 = $10 = NULL), then store/images.go productImagesSQL for 20 of the
-- seeded products (the API passes the page's ids from the first statement's rows).
-- The server's driver sends those as bound parameters of an unnamed statement, which
-- PostgreSQL plans with the values, folding the same constants the literals fold here.
SELECT id, sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
	currency, category, tags, stock, low_stock_threshold, is_active, is_featured,
	weight_grams, length_mm, width_mm, height_mm, created_at, updated_at
FROM products
WHERE CASE 'active' WHEN 'all' THEN true WHEN 'archived' THEN NOT is_active ELSE is_active END
	AND ('' = '' OR category = '')
	AND ('' = '' OR search_text LIKE lower(''))
	AND (NULL::bigint IS NULL OR price_cents >= NULL::bigint)
	AND (NULL::bigint IS NULL OR price_cents <= NULL::bigint)
	AND (NOT false OR stock > 0)
	AND (NOT false OR is_featured)
	AND (NULL::timestamptz IS NULL OR (created_at, id) < (NULL::timestamptz, NULL::uuid))
ORDER BY created_at DESC, id DESC
LIMIT 21;
SELECT id, product_id, blob_key, thumbnail_key, content_type, width, height, byte_size, alt, position, created_at
FROM product_images
WHERE product_id = ANY(({{.ProductIDs}})[1:20])
ORDER BY product_id, position;
