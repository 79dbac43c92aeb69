-- Stock workflows: low-stock crossings.
--
-- A crossing is stock moving from above a product's low_stock_threshold to
-- at or below it. It is detected by a trigger in the transaction of the
-- stock change itself, whichever statement made it (checkout's sale,
-- an admin's adjustment, anything later), so no path can miss one. The
-- UPDATE that moves stock holds the product's row lock, so concurrent
-- checkouts see each other's stock in turn and only one of them sees the
-- move across the threshold: one crossing, however many sales race.
-- A crossing re-arms by itself: the next one needs stock above the
-- threshold again (a restock, a release) before it can fall through it.

-- How many times the product's stock has fallen to its threshold: the
-- number of its latest crossing, part of the alert's dedupe key.
ALTER TABLE products
    ADD COLUMN low_stock_crossings integer NOT NULL DEFAULT 0;

-- One row per crossing, written with the stock change; alerted_at is set
-- when its low-stock-alert is written to the notification outbox.
CREATE TABLE low_stock_crossings (
    product_id  uuid NOT NULL REFERENCES products (id),
    crossing    integer NOT NULL,
    stock       integer NOT NULL,
    threshold   integer NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    alerted_at  timestamptz,
    PRIMARY KEY (product_id, crossing)
);

-- The alert job reads only the crossings not yet alerted.
CREATE INDEX low_stock_crossings_pending_idx ON low_stock_crossings (occurred_at)
    WHERE alerted_at IS NULL;

CREATE FUNCTION record_low_stock_crossing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.stock > NEW.low_stock_threshold AND NEW.stock <= NEW.low_stock_threshold THEN
        NEW.low_stock_crossings := OLD.low_stock_crossings + 1;
        INSERT INTO low_stock_crossings (product_id, crossing, stock, threshold)
        VALUES (NEW.id, NEW.low_stock_crossings, NEW.stock, NEW.low_stock_threshold);
    END IF;
    RETURN NEW;
END
$$;

-- Only statements that lower stock can cross; the WHEN clause keeps every
-- other update (restocks, releases, catalog edits) free of the function call.
CREATE TRIGGER products_low_stock_crossing
    BEFORE UPDATE OF stock ON products
    FOR EACH ROW
    WHEN (NEW.stock < OLD.stock)
    EXECUTE FUNCTION record_low_stock_crossing();

-- The daily report lists active products at or below their threshold.
CREATE INDEX products_low_stock_idx ON products (sku)
    WHERE is_active AND stock <= low_stock_threshold;
