/**
 * Errors the API answers with: RFC 9457 `application/problem+json`.
 *
 * Branch on `type` (one URI per cause, listed in the spec's `Problem` schema),
 * never on `detail`, which is prose for humans.
 */
import type { components } from "./schema.js";

/** A field that failed validation: a dotted path into the body, or a parameter's name. */
export type FieldError = components["schemas"]["FieldError"];

/** Every problem `type` the API documents. */
export type ProblemType = components["schemas"]["Problem"]["type"];

/** The problem `type` URIs the helpers branch on. */
export const problemTypes = {
  invalid: "https://shopd.dev/problems/invalid",
  unauthorized: "https://shopd.dev/problems/unauthorized",
  forbidden: "https://shopd.dev/problems/forbidden",
  notFound: "https://shopd.dev/problems/not_found",
  insufficientStock: "https://shopd.dev/problems/insufficient_stock",
  idempotencyInFlight: "https://shopd.dev/problems/idempotency_in_flight",
  idempotencyKeyReused: "https://shopd.dev/problems/idempotency_key_reused",
  rateLimited: "https://shopd.dev/problems/rate_limited",
  unavailable: "https://shopd.dev/problems/unavailable",
} as const satisfies Record<string, ProblemType>;

/**
 * A problem+json answer, thrown by the helpers (`checkout`, `paginate`, the
 * streams). `type`, `title`, `status` and `detail` are the RFC 9457 members;
 * `errors` lists the fields of a validation failure; any other member the
 * server sent (`productId`, `sku`, `requested`, `available` for insufficient
 * stock; `requestId`) is a property too, and all of them are in `body`.
 */
export class ShopProblem extends Error {
  /** The cause, a URI from the spec (e.g. `https://shopd.dev/problems/insufficient_stock`). */
  readonly type: string;
  /** The fixed title of `type`. */
  readonly title: string;
  /** The HTTP status. */
  readonly status: number;
  /** What went wrong in this occurrence, for a human. */
  readonly detail: string | undefined;
  /** The fields that failed validation (empty unless the problem is a validation failure). */
  readonly errors: FieldError[];
  /** The request id to quote to support (also the `X-Request-Id` header). */
  readonly requestId: string | undefined;
  /** Insufficient stock: the product that ran short. */
  declare readonly productId?: string;
  /** Insufficient stock: that product's SKU. */
  declare readonly sku?: string;
  /** Insufficient stock: the quantity the cart asked for. */
  declare readonly requested?: number;
  /** Insufficient stock: what is left (0 when the product was archived). */
  declare readonly available?: number;
  /** `Retry-After` in seconds, when the answer carried one (409 in flight, 429, 503). */
  readonly retryAfter: number | undefined;
  /** The whole problem document as received, extension members included. */
  readonly body: Readonly<Record<string, unknown>>;

  constructor(body: Record<string, unknown>, init: { status?: number; retryAfter?: number } = {}) {
    const title = typeof body.title === "string" ? body.title : "Request failed";
    const detail = typeof body.detail === "string" ? body.detail : undefined;
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ShopProblem";
    // Extension members (productId, available, ...) become properties;
    // the members typed below are set from the body with their checks.
    for (const [k, v] of Object.entries(body)) {
      if (!reserved.has(k)) {
        (this as Record<string, unknown>)[k] = v;
      }
    }
    this.body = body;
    this.type = typeof body.type === "string" ? body.type : "about:blank";
    this.title = title;
    this.status = typeof body.status === "number" ? body.status : (init.status ?? 0);
    this.detail = detail;
    this.errors = Array.isArray(body.errors) ? (body.errors as FieldError[]) : [];
    this.requestId = typeof body.requestId === "string" ? body.requestId : undefined;
    this.retryAfter = init.retryAfter;
  }

  /**
   * The problem a failed response carries. `body` is what openapi-fetch
   * parsed (its `error`), or undefined to read it from `response`. A body
   * that is not a problem document (a proxy's HTML page) still gives a
   * ShopProblem with the response's status.
   */
  static async fromResponse(response: Response, body?: unknown): Promise<ShopProblem> {
    if (body === undefined && !response.bodyUsed) {
      const text = await response.text().catch(() => "");
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
    }
    const doc: Record<string, unknown> =
      body !== null && typeof body === "object" && !Array.isArray(body)
        ? { ...(body as Record<string, unknown>) }
        : { title: response.statusText || `HTTP ${response.status}`, status: response.status };
    return new ShopProblem(doc, { status: response.status, retryAfter: retryAfterSeconds(response) });
  }
}

const reserved = new Set([
  "type", "title", "status", "detail", "errors", "requestId", "retryAfter", "body", "message", "name", "stack", "cause",
]);

/** Reports whether e is a ShopProblem, optionally of one `type`. */
export function isShopProblem(e: unknown, type?: string): e is ShopProblem {
  return e instanceof ShopProblem && (type === undefined || e.type === type);
}

/** Reads `Retry-After` as whole seconds (the API sends seconds; an HTTP date is converted). */
export function retryAfterSeconds(response: Response): number | undefined {
  const v = response.headers.get("Retry-After");
  if (v === null || v.trim() === "") {
    return undefined;
  }
  if (/^\d+$/.test(v.trim())) {
    return Number(v.trim());
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
