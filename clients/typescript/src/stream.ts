/**
 * Live updates: the API's Server-Sent Events streams as async iterables,
 * read with fetch (so the bearer token travels in a header, never in the
 * URL) and resumed with `Last-Event-ID` after a dropped connection.
 */
import { sleep } from "./checkout.js";
import { ShopProblem } from "./problem.js";
import type { components } from "./schema.js";

/** An event's `data` (the spec's `StreamEvent`); the fields that do not apply to its type are null. */
export type ShopEventData = components["schemas"]["StreamEvent"];

/** The event names the streams send: `order.placed`, `order.paid`, ..., `inventory.low_stock`. */
export type ShopEventType = ShopEventData["type"];

/** One event of a stream. */
export interface ShopEvent {
  /** The event's id, opaque; a reconnect sends the last one as `Last-Event-ID`. */
  id: string;
  /** The event name (`event:`), e.g. `order.paid`. */
  type: ShopEventType;
  /** The event's JSON `data:`. */
  data: ShopEventData;
}

/** How a stream is read. */
export interface StreamOptions {
  /** Ends the iteration (cleanly, without an error) when it aborts. */
  signal?: AbortSignal;
  /** Resume after this event id (a `ShopEvent.id` seen earlier). */
  lastEventId?: string;
  /** The wait before a reconnect, in milliseconds, until the server sends `retry:` (default 1000). */
  reconnectDelayMs?: number;
  /**
   * Called each time a connection is open (the server answered 200), before
   * any of its events: from then on nothing that happens is missed, so a UI
   * can show "live", or a test can trigger the change it waits for.
   */
  onOpen?: () => void;
}

/** What streamEvents needs from the client. */
export interface StreamSource extends StreamOptions {
  url: string;
  fetch: typeof globalThis.fetch;
  token: () => Promise<string | undefined>;
  headers?: Record<string, string>;
}

/**
 * The events at source.url, for ever: a connection that ends or fails is
 * opened again after the reconnect delay, with `Last-Event-ID`. A 4xx other
 * than 429 (no token, not yours, no such order) is thrown as a ShopProblem;
 * 429 and 5xx are waited out like a dropped connection.
 */
export async function* streamEvents(source: StreamSource): AsyncGenerator<ShopEvent, void, undefined> {
  const abort = new AbortController();
  const onAbort = () => abort.abort(source.signal?.reason);
  if (source.signal?.aborted) {
    return;
  }
  source.signal?.addEventListener("abort", onAbort, { once: true });
  let lastEventId = source.lastEventId;
  let delayMs = source.reconnectDelayMs ?? 1000;
  try {
    while (!abort.signal.aborted) {
      let body: ReadableStream<Uint8Array> | null = null;
      try {
        const headers = new Headers(source.headers);
        headers.set("Accept", "text/event-stream");
        const token = await source.token();
        if (token) {
          headers.set("Authorization", `Bearer ${token}`);
        }
        if (lastEventId !== undefined && lastEventId !== "") {
          headers.set("Last-Event-ID", lastEventId);
        }
        const res = await source.fetch(source.url, { headers, signal: abort.signal, cache: "no-store" });
        if (!res.ok) {
          const problem = await ShopProblem.fromResponse(res);
          if (res.status !== 429 && res.status < 500) {
            throw problem;
          }
          if (problem.retryAfter !== undefined) {
            delayMs = Math.max(delayMs, problem.retryAfter * 1000);
          }
        } else {
          body = res.body;
          source.onOpen?.();
        }
      } catch (err) {
        if (abort.signal.aborted) {
          return;
        }
        if (err instanceof ShopProblem) {
          throw err;
        }
        // A network error: reconnect below.
      }
      if (body) {
        try {
          for await (const msg of readEvents(body, abort.signal)) {
            if (msg.retry !== undefined) {
              delayMs = msg.retry;
            }
            if (msg.id !== undefined) {
              lastEventId = msg.id;
            }
            if (msg.data === undefined) {
              continue;
            }
            let data: ShopEventData;
            try {
              data = JSON.parse(msg.data) as ShopEventData;
            } catch {
              continue; // not ours to understand; keep the stream
            }
            yield { id: lastEventId ?? "", type: (msg.event ?? data.type) as ShopEventType, data };
          }
        } catch {
          if (abort.signal.aborted) {
            return;
          }
          // The connection broke mid-stream: reconnect below.
        }
      }
      try {
        await sleep(delayMs, abort.signal);
      } catch {
        return; // aborted while waiting
      }
    }
  } finally {
    source.signal?.removeEventListener("abort", onAbort);
    abort.abort(); // the loop was left: close the connection
  }
}

/** One dispatched SSE message; fields absent from it are undefined. */
interface SSEMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/**
 * Parses text/event-stream (the WHATWG HTML "event stream interpretation"):
 * lines end in CRLF, LF or CR; `:` starts a comment (heartbeats); a blank
 * line dispatches. A message with only `id:` or `retry:` is yielded without
 * data so the caller keeps the id.
 */
async function* readEvents(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<SSEMessage> {
  const reader = body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const decoder = new TextDecoder();
  let buffer = "";
  let msg: SSEMessage = {};
  let data: string[] = [];
  let afterCR = false; // the last chunk ended in CR: a LF starting the next one belongs to it
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return; // an unfinished message at the end is dropped, as EventSource does
      }
      buffer += decoder.decode(value, { stream: true });
      if (afterCR && buffer.startsWith("\n")) {
        buffer = buffer.slice(1);
      }
      afterCR = false;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        if (end < 0) {
          break;
        }
        const line = buffer.slice(0, end);
        const crlf = buffer.startsWith("\r\n", end);
        afterCR = !crlf && buffer[end] === "\r" && end === buffer.length - 1;
        buffer = buffer.slice(end + (crlf ? 2 : 1));
        if (line === "") {
          if (data.length > 0) {
            msg.data = data.join("\n");
          }
          if (msg.data !== undefined || msg.id !== undefined || msg.retry !== undefined) {
            yield msg;
          }
          msg = {};
          data = [];
          continue;
        }
        if (line.startsWith(":")) {
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) {
          value = value.slice(1);
        }
        switch (field) {
          case "event":
            msg.event = value;
            break;
          case "data":
            data.push(value);
            break;
          case "id":
            if (!value.includes("\0")) {
              msg.id = value;
            }
            break;
          case "retry":
            if (/^\d+$/.test(value)) {
              msg.retry = Number(value);
            }
            break;
        }
      }
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
