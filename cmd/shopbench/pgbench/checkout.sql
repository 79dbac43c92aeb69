-- add-to-cart + checkout: the statements of the two transactions the API runs for
-- POST /v1/cart/items (store/carts.go AddToCart) and POST /v1/checkout (store/checkout.go
-- PlaceOrder), for 1 unit of a high-stock product. Client N is customer N and buys product
-- N mod {{.NumStockProducts}}, as API client N does. Skipped (the API does them, this does
-- not): the idempotency-key rows and their lease, the order number and customer read after
-- commit, the River jobs (the cart's and the order's two), the stripe-mock calls (a
-- PaymentIntent per checkout; a Stripe customer on a customer's first), attaching the
-- intent to the order and finishing the key. Keep this in step with the store's SQL.
\set c :client_id % {{.NumCustomers}} + 1
\set p :client_id % {{.NumStockProducts}} + 1

-- POST /v1/cart/items
BEGIN;
INSERT INTO carts (user_id, updated_at)
VALUES (({{.Customers}})[:c], now())
ON CONFLICT (user_id) DO UPDATE
SET updated_at = EXCLUDED.updated_at
RETURNING updated_at;
-- the line added and the cart's lines in one statement (addCartItemSQL)
WITH added AS (
	INSERT INTO cart_items (user_id, product_id, quantity, added_at)
	SELECT ({{.Customers}})[:c], p.id, 1, now()
	FROM products p
	WHERE p.id = ({{.StockProducts}})[:p]
		AND p.is_active
		AND NOT EXISTS (
			SELECT 1
			FROM cart_items i
			JOIN products o ON o.id = i.product_id
			WHERE i.user_id = ({{.Customers}})[:c]
				AND i.product_id <> p.id
				AND o.currency <> p.currency
		)
	ON CONFLICT (user_id, product_id) DO UPDATE
	SET quantity = cart_items.quantity + EXCLUDED.quantity
	WHERE cart_items.quantity + EXCLUDED.quantity <= 99
	RETURNING product_id, quantity, added_at
), i AS (
	SELECT product_id, quantity, added_at
	FROM cart_items
	WHERE user_id = ({{.Customers}})[:c]
		AND product_id <> ({{.StockProducts}})[:p]
	UNION ALL
	SELECT product_id, quantity, added_at
	FROM added
)
SELECT i.product_id, p.sku, p.name, p.price_cents, p.currency, i.quantity, p.is_active, p.stock, i.added_at,
	img.blob_key AS image_key, img.thumbnail_key AS image_thumbnail_key
FROM i
JOIN products p ON p.id = i.product_id
LEFT JOIN LATERAL (
	SELECT blob_key, thumbnail_key
	FROM product_images
	WHERE product_id = p.id
	ORDER BY position
	LIMIT 1
) img ON true
WHERE EXISTS (SELECT 1 FROM added)
ORDER BY i.added_at, i.product_id;
COMMIT;

-- POST /v1/checkout: the order transaction
BEGIN;
SELECT updated_at
FROM carts
WHERE user_id = ({{.Customers}})[:c]
FOR UPDATE;
SELECT product_id, quantity
FROM cart_items
WHERE user_id = ({{.Customers}})[:c]
ORDER BY product_id;
SELECT gen_random_uuid() AS oid
\gset
WITH p AS (
	UPDATE products
	SET stock = stock - 1, updated_at = now()
	WHERE id = ({{.StockProducts}})[:p]
		AND is_active
		AND stock >= 1
	RETURNING id, sku, name, price_cents, currency, stock
), sale AS (
	INSERT INTO inventory_transactions (product_id, sku, quantity_change, type, stock_after, reference_id, note)
	SELECT id, sku, -1, 'sale', stock, :oid, 'checkout'
	FROM p
)
SELECT sku, name, price_cents, currency, stock FROM p
\gset
\set tax (:price_cents * 1000 + 5000) / 10000
\set shipping case when :price_cents > 10000 then 0 else 1000 end
\set total :price_cents + :tax + :shipping
-- the order (its email the customer's), its event, its line and the emptied cart in one
-- statement (placeOrderSQL; the key's move to order_created is skipped)
WITH o AS (
	INSERT INTO orders (id, customer_id, email, status, payment_status, fulfillment_status,
		subtotal_cents, tax_cents, shipping_cents, discount_cents, total_cents, currency,
		shipping_address, billing_address, payment_due_at)
	SELECT :oid, u.id, u.email, 'pending', 'pending', 'unfulfilled',
		:price_cents, :tax, :shipping, 0, :total, :currency,
		'{{.Address}}', '{{.Address}}', now() + interval '1 hour'
	FROM users u
	WHERE u.id = ({{.Customers}})[:c]
	RETURNING id, order_number, customer_id, email, status, payment_status, fulfillment_status,
		subtotal_cents, tax_cents, shipping_cents, discount_cents, total_cents, refunded_cents, currency,
		shipping_address, billing_address, payment_intent_id, client_secret, tracking_number,
		shipped_at, delivered_at, payment_due_at, created_at, updated_at
), placed AS (
	INSERT INTO order_events (order_id, type, status, payment_status, fulfillment_status, actor, actor_id, amount_cents)
	SELECT id, 'placed', status, payment_status, fulfillment_status, 'customer', customer_id, total_cents
	FROM o
), lines AS (
	INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_cents, quantity, line_total_cents)
	VALUES (:oid, 1, ({{.StockProducts}})[:p], :sku, :name, :price_cents, 1, :price_cents)
), gone AS (
	DELETE FROM cart_items
	WHERE user_id = ({{.Customers}})[:c]
), emptied AS (
	UPDATE carts
	SET updated_at = now()
	WHERE user_id = ({{.Customers}})[:c]
)
SELECT id FROM o;
-- numbered by the orders_numbered trigger as this commits, as the API's orders are
COMMIT;
