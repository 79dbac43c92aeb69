-- get product: store/products.go productByIDSQL, then store/images.go productImagesSQL for
-- its images, as GET /v1/products/{id} runs them, over
-- the same seeded ids the API scenario walks ({{.NumProducts}} of them, picked at random).
\set i random(1, {{.NumProducts}})
SELECT id, sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
	currency, category, tags, stock, low_stock_threshold, is_active, is_featured,
	weight_grams, length_mm, width_mm, height_mm, created_at, updated_at
FROM products
WHERE id = ({{.ProductIDs}})[:i];
SELECT id, product_id, blob_key, thumbnail_key, content_type, width, height, byte_size, alt, position, created_at
FROM product_images
WHERE product_id = ANY(ARRAY[({{.ProductIDs}})[:i]])
ORDER BY product_id, position;
