-- TRUNCATE fires no row trigger, so migration 0013's notifications miss
-- it: a statement trigger tells each instance's catalog read cache that
-- every product may have changed (payload '*': drop everything). Sent
-- with the commit, like the rest.
CREATE FUNCTION notify_catalog_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopd_catalog', '*');
    RETURN NULL;
END;
$$;

CREATE TRIGGER products_notify_catalog_truncate
    AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_truncate();

CREATE TRIGGER product_images_notify_catalog_truncate
    AFTER TRUNCATE ON product_images
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_truncate();
