/**
 * shop.checkout: POST /v1/checkout with an idempotency key per attempt,
 * retried safely.
 */
import type { Client } from "openapi-fetch";

import { ShopProblem, problemTypes } from "./problem.js";
import type { components, paths } from "./schema.js";

/** The checkout body: `{ shippingAddress, billingAddress? }`. */
export type CheckoutBody = components["schemas"]["CheckoutRequest"];
/** The checkout result: `{ order, payment }`. */
export type CheckoutResult = components["schemas"]["CheckoutResult"];

/** How one checkout call behaves. */
export interface CheckoutOptions {
  /**
   * The `Idempotency-Key` (1..255 characters). By default a new
   * `crypto.randomUUID()` per call. Pass your own to retry an attempt across
   * page reloads: the same key and body give the same order back.
   */
  idempotencyKey?: string;
  /** Sends in all, the first included (default 5). */
  maxAttempts?: number;
  /** The longest wait between two sends, in milliseconds, whatever `Retry-After` says (default 30 000). */
  maxDelayMs?: number;
  /** Aborts the call, its waits included. */
  signal?: AbortSignal;
}

const defaultMaxAttempts = 5;
const defaultMaxDelayMs = 30_000;

/** See ShopClient.checkout. */
export async function checkout(api: Client<paths>, body: CheckoutBody, options: CheckoutOptions = {}): Promise<CheckoutResult> {
  const key = options.idempotencyKey ?? crypto.randomUUID();
  const maxAttempts = Math.max(1, options.maxAttempts ?? defaultMaxAttempts);
  const maxDelayMs = options.maxDelayMs ?? defaultMaxDelayMs;
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await api.POST("/v1/checkout", {
        params: { header: { "Idempotency-Key": key } },
        body,
        signal: options.signal,
      });
    } catch (err) {
      // A network error: the request may or may not have reached the
      // server, which is what the key is for.
      if (options.signal?.aborted || attempt >= maxAttempts) {
        throw err;
      }
      await sleep(Math.min(backoffMs(attempt), maxDelayMs), options.signal);
      continue;
    }
    if (res.data !== undefined) {
      return res.data; // 201 placed, or 200 a replay of the same attempt
    }
    const problem = await ShopProblem.fromResponse(res.response, res.error);
    const retryable =
      (problem.status === 409 && problem.type === problemTypes.idempotencyInFlight) || problem.status === 503;
    if (!retryable || attempt >= maxAttempts) {
      throw problem;
    }
    const wait = problem.retryAfter !== undefined ? problem.retryAfter * 1000 : backoffMs(attempt);
    await sleep(Math.min(wait, maxDelayMs), options.signal);
  }
}

/** 250 ms, 500 ms, 1 s, ... with up to 20% jitter. */
function backoffMs(attempt: number): number {
  const base = 250 * 2 ** (attempt - 1);
  return base + Math.random() * base * 0.2;
}

/** Resolves after ms, or rejects with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
