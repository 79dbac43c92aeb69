-- Every change to a product or its images tells each instance's catalog
-- read cache which product changed: pg_notify is sent with the commit, so
-- an instance never drops an entry for a change that then rolls back, and
-- never misses one that commits. The payload is the product's id; one
-- transaction that changes a product several times sends it once
-- (PostgreSQL folds identical notifications of a transaction).
CREATE FUNCTION notify_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed uuid;
    was uuid;
BEGIN
    -- Each field is read in its own branch: a trigger on products has no
    -- product_id, one on product_images no products.id.
    IF TG_TABLE_NAME = 'products' THEN
        IF TG_OP <> 'INSERT' THEN was := OLD.id; END IF;
        IF TG_OP <> 'DELETE' THEN changed := NEW.id; END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN was := OLD.product_id; END IF;
        IF TG_OP <> 'DELETE' THEN changed := NEW.product_id; END IF;
    END IF;
    IF was IS NOT NULL THEN
        PERFORM pg_notify('shopd_catalog', was::text);
    END IF;
    IF changed IS NOT NULL AND changed IS DISTINCT FROM was THEN
        PERFORM pg_notify('shopd_catalog', changed::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER products_notify_catalog
    AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION notify_catalog_change();

CREATE TRIGGER product_images_notify_catalog
    AFTER INSERT OR UPDATE OR DELETE ON product_images
    FOR EACH ROW EXECUTE FUNCTION notify_catalog_change();
