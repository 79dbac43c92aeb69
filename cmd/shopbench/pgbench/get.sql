-- get product: store/products.go productByIDSQL (the product and its images in one
-- statement), as GET /v1/products/{id} runs it, over the same seeded ids the API scenario
-- walks ({{.NumProducts}} of them, picked at random).
\set i random(1, {{.NumProducts}})
SELECT id, sku, name, description, price_cents, compare_at_price_cents, cost_price_cents,
	currency, category, tags, stock, low_stock_threshold, is_active, is_featured,
	weight_grams, length_mm, width_mm, height_mm, created_at, updated_at,
	(SELECT coalesce(json_agg(i ORDER BY i.position), '[]') FROM product_images i WHERE i.product_id = products.id) AS images
FROM products
WHERE id = ({{.ProductIDs}})[:i];
