/**
 * createShopClient: the typed openapi-fetch client for the API, with the
 * bearer token attached, and the helpers built on it.
 */
import createClient, { type Client } from "openapi-fetch";

import { checkout, type CheckoutBody, type CheckoutOptions, type CheckoutResult } from "./checkout.js";
import { paginate, type ListItem, type ListPath, type PaginateOptions, type PaginateQuery } from "./paginate.js";
import type { paths } from "./schema.js";
import { streamEvents, type ShopEvent, type StreamOptions } from "./stream.js";

/** Where the token comes from: a fixed one, or a function asked before every request. */
export interface ShopClientOptions {
  /** The API's base URL, e.g. `https://api.example.com` (no `/v1`: paths carry it). */
  baseUrl: string;
  /** A bearer token (an `accessToken` from `POST /v1/auth/login`). */
  token?: string;
  /**
   * Asked before every request (and every stream reconnect) for the current
   * token; return undefined or null for none. Takes precedence over `token`.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** The fetch to use; `globalThis.fetch` by default. */
  fetch?: typeof globalThis.fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** The client: `api` for any operation, and the helpers. */
export interface ShopClient {
  /**
   * The typed openapi-fetch client: `shop.api.GET("/v1/products", { params: { query: { limit: 20 } } })`
   * resolves to `{ data, error, response }`; it never throws for an HTTP status.
   */
  readonly api: Client<paths>;
  /** The base URL the client calls, without a trailing slash. */
  readonly baseUrl: string;
  /**
   * Checks out the signed-in customer's cart (`POST /v1/checkout`) with one
   * `Idempotency-Key` for this call, kept across its own retries of network
   * errors, `409 idempotency_in_flight` and `503` (honouring `Retry-After`,
   * bounded). A replay of a finished checkout (200) resolves like a new one
   * (201). Throws a ShopProblem for any other problem, e.g. insufficient stock.
   */
  checkout(body: CheckoutBody, options?: CheckoutOptions): Promise<CheckoutResult>;
  /**
   * Every item of a list endpoint, page by page (follows `nextCursor`):
   * `for await (const p of shop.paginate("/v1/products", { category: "mugs" }))`.
   * Throws a ShopProblem when a page fails.
   */
  paginate<P extends ListPath>(path: P, query?: PaginateQuery<P>, options?: PaginateOptions<P>): AsyncIterable<ListItem<P>>;
  /**
   * One order's events (`GET /v1/orders/{orderId}/stream`, owner or admin) as
   * they happen; reconnects with `Last-Event-ID` so nothing is lost. Ends when
   * the loop is left (`break`) or `options.signal` aborts.
   */
  streamOrder(orderId: string, options?: StreamOptions): AsyncIterable<ShopEvent>;
  /** Every order transition and low-stock crossing (`GET /v1/admin/events`, admin); like streamOrder. */
  streamAdminEvents(options?: StreamOptions): AsyncIterable<ShopEvent>;
}

/** Creates a client for the API at `options.baseUrl`. */
export function createShopClient(options: ShopClientOptions): ShopClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchImpl = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const token = async (): Promise<string | undefined> =>
    (options.getToken ? await options.getToken() : options.token) ?? undefined;

  const api = createClient<paths>({ baseUrl, fetch: fetchImpl, headers: options.headers });
  api.use({
    async onRequest({ request }) {
      const t = await token();
      if (t && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${t}`);
      }
      return request;
    },
  });

  const stream = (path: string, o?: StreamOptions) =>
    streamEvents({ url: baseUrl + path, fetch: fetchImpl, token, headers: options.headers, ...o });

  return {
    api,
    baseUrl,
    checkout: (body, o) => checkout(api, body, o),
    paginate: (path, query, o) => paginate(api, path, query, o),
    streamOrder: (orderId, o) => stream(`/v1/orders/${encodeURIComponent(orderId)}/stream`, o),
    streamAdminEvents: (o) => stream("/v1/admin/events", o),
  };
}
