-- Every change to a product, or to its images, moves its version on by
-- one: the catalog cache keeps the newer of two reads of a product by it,
-- so an instance never answers a product older than one it has answered
-- already. Row locks order the changes of one product, so its versions
-- follow the order they commit in.
ALTER TABLE products ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION bump_product_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER products_version
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION bump_product_version();

-- An image change is a change of its product's answer.
CREATE FUNCTION bump_product_version_for_image() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE products SET version = version WHERE id = OLD.product_id;
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.product_id <> OLD.product_id) THEN
        UPDATE products SET version = version WHERE id = NEW.product_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER product_images_version
    AFTER INSERT OR UPDATE OR DELETE ON product_images
    FOR EACH ROW EXECUTE FUNCTION bump_product_version_for_image();
