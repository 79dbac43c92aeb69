// The helpers' wire behaviour on what the real server seldom or never sends:
// event-stream framing split at awkward places (CRLF across chunks, CR-only
// lines, multi-line data, comments, retry), reconnects with a fresh token,
// and checkout answers that must or must not be retried. A node:http server
// plays the API on loopback; e2e/journey.test.ts runs the same client
// against the real one.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { createShopClient, isShopProblem, problemTypes, type ShopEvent } from "../src/index.js";

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>;

/** Serves handler on a loopback port; n counts the requests from 1. */
async function serve(t: { after: (fn: () => void) => void }, handler: Handler): Promise<string> {
  let n = 0;
  const server = createServer((req, res) => void handler(req, res, ++n));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const event = (type: string, orderId: string) =>
  JSON.stringify({ type, orderId, orderNumber: "ORD-000001", status: null, paymentStatus: null, fulfillmentStatus: null, productId: null, sku: null, stock: null, occurredAt: "2026-11-30T10:00:00Z" });

const address = {
  shippingAddress: { firstName: "Ada", lastName: "Lovelace", line1: "1 Main St", city: "London", postalCode: "N1 9GU", country: "GB" },
};

test("streams: awkward framing, reconnect with Last-Event-ID and a fresh token, clean stop", async (t) => {
  const seen: { auth: string | undefined; lastEventId: string | undefined; accept: string | undefined }[] = [];
  let closed!: () => void;
  const secondClosed = new Promise<void>((resolve) => (closed = resolve));
  const base = await serve(t, async (req, res, n) => {
    seen.push({ auth: req.headers.authorization, lastEventId: req.headers["last-event-id"] as string | undefined, accept: req.headers.accept });
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    if (n === 1) {
      // CRLF split between chunks, a comment, retry, multi-line data, an
      // id-only message; then the connection ends.
      const placed = event("order.placed", "o1");
      const cut = placed.indexOf(',"orderId"') + 1; // data lines are joined with a newline: JSON whitespace
      const parts = [
        ": heartbeat\r\n\r",
        "\nretry: 20\r\n\r\n",
        `id: 1\r\nevent: order.placed\r\ndata: ${placed.slice(0, cut)}\r\n`,
        `data: ${placed.slice(cut)}\r\n\r\n`,
        "id: 2\n\n",
      ];
      for (const p of parts) {
        res.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
      res.end();
      return;
    }
    // CR-only line ends; then the stream stays open until the client leaves.
    req.on("close", () => closed());
    res.write(`id: 3\revent: order.paid\rdata: ${event("order.paid", "o1")}\r\r`);
  });
  let token = "first";
  const shop = createShopClient({ baseUrl: base, getToken: () => token });
  const events: ShopEvent[] = [];
  for await (const e of shop.streamOrder("o1", { reconnectDelayMs: 5000 })) {
    events.push(e);
    token = "second";
    if (e.type === "order.paid") {
      break;
    }
  }
  assert.deepEqual(
    events.map((e) => [e.id, e.type, e.data.orderId]),
    [
      ["1", "order.placed", "o1"],
      ["3", "order.paid", "o1"],
    ],
  );
  assert.equal(seen.length, 2, "reconnected once, after retry: 20 ms rather than the 5 s default");
  assert.deepEqual(seen[0], { auth: "Bearer first", lastEventId: undefined, accept: "text/event-stream" });
  assert.deepEqual(seen[1], { auth: "Bearer second", lastEventId: "2", accept: "text/event-stream" }, "the id-only message counts");
  await secondClosed; // leaving the loop closed the connection
});

test("streams: an AbortSignal ends the iteration without an error; a 404 is a ShopProblem", async (t) => {
  const base = await serve(t, (req, res) => {
    if (req.url === "/v1/orders/missing/stream") {
      res.writeHead(404, { "Content-Type": "application/problem+json" });
      res.end(JSON.stringify({ type: problemTypes.notFound, title: "Not Found", status: 404, detail: "No such order." }));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.write(`id: 1\nevent: order.paid\ndata: ${event("order.paid", "o2")}\n\n`);
  });
  const shop = createShopClient({ baseUrl: base });
  const abort = new AbortController();
  const got: string[] = [];
  for await (const e of shop.streamAdminEvents({ signal: abort.signal })) {
    got.push(e.type);
    abort.abort();
  }
  assert.deepEqual(got, ["order.paid"]);

  await assert.rejects(
    async () => {
      for await (const _ of shop.streamOrder("missing")) {
        assert.fail("no events from a 404");
      }
    },
    (e: unknown) => isShopProblem(e, problemTypes.notFound) && e.status === 404 && e.detail === "No such order.",
  );
});

test("checkout: one key across 409 in flight and 503 with Retry-After; other problems are not retried", async (t) => {
  const keys: (string | undefined)[] = [];
  const base = await serve(t, (req, res, n) => {
    keys.push(req.headers["idempotency-key"] as string | undefined);
    req.resume();
    if (n === 1) {
      res.writeHead(409, { "Content-Type": "application/problem+json", "Retry-After": "0" });
      res.end(JSON.stringify({ type: problemTypes.idempotencyInFlight, title: "Idempotency Key In Flight", status: 409 }));
    } else if (n === 2) {
      res.writeHead(503, { "Content-Type": "application/problem+json", "Retry-After": "0" });
      res.end(JSON.stringify({ type: problemTypes.unavailable, title: "Service Unavailable", status: 503 }));
    } else if (n === 3) {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ order: { id: "o1" }, payment: { provider: "stripe", paymentIntentId: "pi_1", clientSecret: "s" } }));
    } else {
      res.writeHead(409, { "Content-Type": "application/problem+json" });
      res.end(
        JSON.stringify({ type: problemTypes.insufficientStock, title: "Insufficient Stock", status: 409, productId: "p1", sku: "MUG", requested: 2, available: 1 }),
      );
    }
  });
  const shop = createShopClient({ baseUrl: base, token: "t" });
  const res = await shop.checkout(address);
  assert.equal(res.order.id, "o1", "a replay (200) resolves like a 201");
  assert.equal(keys.length, 3);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]), `one key: ${keys.join(", ")}`);

  await assert.rejects(shop.checkout(address), (e: unknown) => {
    assert.ok(isShopProblem(e, problemTypes.insufficientStock));
    assert.deepEqual([e.productId, e.sku, e.requested, e.available], ["p1", "MUG", 2, 1]);
    return true;
  });
  assert.equal(keys.length, 4, "insufficient stock is not retried");
  assert.notEqual(keys[3], keys[0], "a new call, a new key");
});

test("checkout: retries are bounded", async (t) => {
  let sends = 0;
  const base = await serve(t, (req, res) => {
    sends++;
    req.resume();
    res.writeHead(503, { "Content-Type": "application/problem+json", "Retry-After": "0" });
    res.end(JSON.stringify({ type: problemTypes.unavailable, title: "Service Unavailable", status: 503 }));
  });
  const shop = createShopClient({ baseUrl: base, token: "t" });
  await assert.rejects(shop.checkout(address, { maxAttempts: 3 }), (e: unknown) => isShopProblem(e) && e.status === 503 && e.retryAfter === 0);
  assert.equal(sends, 3);
});
