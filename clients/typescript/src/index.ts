/**
 * @shopd/client: the shopd commerce API for TypeScript.
 *
 * Types are generated from the API's openapi.yaml (openapi-typescript);
 * `shop.api` is the typed openapi-fetch client; the helpers add safe
 * checkout retries, problem+json errors, pagination and live events.
 */
export { createShopClient, type ShopClient, type ShopClientOptions } from "./client.js";
export type { CheckoutBody, CheckoutOptions, CheckoutResult } from "./checkout.js";
export type { ListItem, ListPath, PaginateOptions, PaginateQuery } from "./paginate.js";
export { ShopProblem, isShopProblem, problemTypes, type FieldError, type ProblemType } from "./problem.js";
export type { ShopEvent, ShopEventData, ShopEventType, StreamOptions } from "./stream.js";
export type { components, operations, paths } from "./schema.js";

import type { components } from "./schema.js";

/** A product as the API returns it. */
export type Product = components["schemas"]["Product"];
/** The body of `POST /v1/products`: only `sku`, `name`, `priceCents` and `stock` are required. */
export type ProductCreate = components["schemas"]["ProductCreate"];
/** A customer's cart with its totals. */
export type Cart = components["schemas"]["Cart"];
/** An order. */
export type Order = components["schemas"]["Order"];
/** An address, for checkout and the address book. */
export type Address = components["schemas"]["Address"];
/** The RFC 9457 problem document. */
export type Problem = components["schemas"]["Problem"];
/** The insufficient-stock problem, with `productId`, `sku`, `requested`, `available`. */
export type InsufficientStockProblem = components["schemas"]["InsufficientStockProblem"];
