// The storefront journey through the built @shopd/client (installed from its
// packed tarball) against a running shopd: e2e_test.go starts the server and
// sets SHOP_URL, ADMIN_EMAIL, ADMIN_PASSWORD, SHOPDEV (the shopdev binary,
// whose `pay` sends the signed payment_intent.succeeded) and PAY_ENV_* (the
// environment `shopdev pay` needs: the webhook secret, a data dir).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { promisify } from "node:util";

import {
  createShopClient,
  isShopProblem,
  problemTypes,
  type CheckoutBody,
  type Order,
  type ShopClient,
  type ShopEvent,
} from "@shopd/client";

function env(name: string): string {
  const v = process.env[name];
  assert.ok(v, `${name} is not set (e2e_test.go sets it)`);
  return v;
}

const baseUrl = env("SHOP_URL");
const run = randomUUID().slice(0, 8); // keeps names unique if the database is reused
const category = `journey-${run}`;
const productCount = 25; // three pages of 10
const shipping: CheckoutBody = {
  shippingAddress: {
    firstName: "Ada",
    lastName: "Lovelace",
    line1: "12 St James Sq",
    city: "London",
    postalCode: "SW1Y 4JH",
    country: "GB",
  },
};

/** Sends the signed payment_intent.succeeded for an order through `shopdev pay`. */
async function pay(orderId: string): Promise<string> {
  const payEnv: Record<string, string> = { PATH: process.env.PATH ?? "" };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("PAY_ENV_") && v !== undefined) {
      payEnv[k.slice("PAY_ENV_".length)] = v;
    }
  }
  const { stdout } = await promisify(execFile)(env("SHOPDEV"), ["pay", "--url", baseUrl, orderId], {
    env: payEnv,
    timeout: 30_000,
  });
  return stdout;
}

/** Resolves with the first event of the iterable that matches, within ms. */
async function firstEvent(
  events: (signal: AbortSignal, onOpen: () => void) => AsyncIterable<ShopEvent>,
  match: (e: ShopEvent) => boolean,
  ms: number,
  whenOpen: () => Promise<unknown>,
): Promise<ShopEvent> {
  const signal = AbortSignal.timeout(ms);
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const trigger = open.then(whenOpen);
  trigger.catch(() => {}); // awaited below; reported there, not as unhandled
  for await (const e of events(signal, () => opened())) {
    if (match(e)) {
      await trigger;
      return e; // leaving the loop closes the connection
    }
  }
  await trigger;
  throw new Error(`no matching event within ${ms} ms (signal aborted: ${signal.aborted})`);
}

test("storefront journey", async (t) => {
  const admin = createShopClient({ baseUrl });
  const login = await admin.api.POST("/v1/auth/login", {
    body: { email: env("ADMIN_EMAIL"), password: env("ADMIN_PASSWORD") },
  });
  assert.equal(login.response.status, 200, JSON.stringify(login.error));
  const adminShop = createShopClient({ baseUrl, token: login.data!.accessToken });

  const created = new Map<string, string>(); // id -> sku
  let scarceId = "";
  await t.test("admin creates a catalog with the minimal create", async () => {
    for (let i = 0; i < productCount; i++) {
      const sku = `J-${run}-${String(i).padStart(2, "0")}`;
      const { data, error, response } = await adminShop.api.POST("/v1/products", {
        body: { sku, name: `Journey mug ${i}`, priceCents: 1500 + i, stock: 50, category },
      });
      assert.equal(response.status, 201, JSON.stringify(error));
      assert.equal(data!.currency, "usd"); // the server's default, left out of the body
      created.set(data!.id, sku);
    }
    const { data, response } = await adminShop.api.POST("/v1/products", {
      body: { sku: `J-${run}-SCARCE`, name: `Last teapot ${run}`, priceCents: 4000, stock: 1, category: `${category}-rare` },
    });
    assert.equal(response.status, 201);
    scarceId = data!.id;
  });

  let customer: ShopClient = admin;
  let token = "";
  await t.test("register and log in", async () => {
    const email = `ada-${run}@example.com`;
    const password = "correct-horse-battery";
    const reg = await admin.api.POST("/v1/auth/register", {
      body: { email, password, firstName: "Ada", lastName: "Lovelace" },
    });
    assert.equal(reg.response.status, 201, JSON.stringify(reg.error));
    const tok = await admin.api.POST("/v1/auth/login", { body: { email, password } });
    assert.equal(tok.response.status, 200);
    token = tok.data!.accessToken;
    customer = createShopClient({ baseUrl, getToken: () => token });
    const me = await customer.api.GET("/v1/me");
    assert.equal(me.data?.email, email);
    token = "";
    const anonymous = await customer.api.GET("/v1/me");
    assert.equal(anonymous.response.status, 401, "getToken is asked on every request");
    token = tok.data!.accessToken;
  });

  await t.test("browse every page with paginate", async () => {
    const seen: string[] = [];
    for await (const p of customer.paginate("/v1/products", { category, limit: 10, sort: "name" })) {
      seen.push(p.id);
    }
    assert.equal(seen.length, productCount, "every product exactly once over three pages");
    assert.deepEqual(new Set(seen), new Set(created.keys()));
    let pages = 0;
    let cursor: string | null | undefined;
    do {
      const { data } = await customer.api.GET("/v1/products", {
        params: { query: { category, limit: 10, ...(cursor ? { cursor } : {}) } },
      });
      pages++;
      cursor = data!.nextCursor;
    } while (cursor);
    assert.equal(pages, 3);
  });

  let mugId = "";
  await t.test("search", async () => {
    const { data } = await customer.api.GET("/v1/products", { params: { query: { q: `j-${run}-07` } } });
    assert.equal(data!.items.length, 1, "the SKU matches case-insensitively");
    const hit = data!.items[0]!;
    assert.equal(hit.sku, `J-${run}-07`);
    mugId = hit.id;
  });

  await t.test("cart", async () => {
    const add = await customer.api.POST("/v1/cart/items", { body: { productId: mugId, quantity: 2 } });
    assert.equal(add.response.status, 201, JSON.stringify(add.error));
    const { data: cart } = await customer.api.GET("/v1/cart");
    assert.equal(cart!.items.length, 1);
    assert.equal(cart!.items[0]!.quantity, 2);
    assert.equal(cart!.subtotalCents, 2 * 1507);
    assert.equal(cart!.totalCents, cart!.subtotalCents + cart!.taxCents + cart!.shippingCents - cart!.discountCents);
  });

  let order: Order | undefined;
  let paymentIntentId = "";
  const key = randomUUID();
  await t.test("checkout", async () => {
    const { data: cart } = await customer.api.GET("/v1/cart");
    const res = await customer.checkout(shipping, { idempotencyKey: key });
    order = res.order;
    paymentIntentId = res.payment.paymentIntentId;
    assert.equal(res.order.status, "pending");
    assert.equal(res.order.paymentStatus, "pending");
    assert.equal(res.order.totalCents, cart!.totalCents, "the cart's preview is what checkout charges");
    assert.equal(res.payment.provider, "stripe");
    assert.match(res.order.orderNumber, /^ORD-\d+$/);
  });

  await t.test("retrying the same checkout gives the same order back", async () => {
    const again = await customer.checkout(shipping, { idempotencyKey: key });
    assert.equal(again.order.id, order!.id);
    assert.equal(again.payment.paymentIntentId, paymentIntentId, "no second PaymentIntent");
    const orders: string[] = [];
    for await (const o of customer.paginate("/v1/orders")) {
      orders.push(o.id);
    }
    assert.deepEqual(orders, [order!.id], "one order, however often the attempt is retried");
  });

  await t.test("pay and see order.paid arrive on the stream", async () => {
    let paidBy = "";
    const paid = await firstEvent(
      (signal, onOpen) => customer.streamOrder(order!.id, { signal, onOpen }),
      (e) => e.type === "order.paid",
      30_000,
      async () => (paidBy = await pay(order!.id)),
    );
    assert.match(paidBy, /payment paid/);
    assert.equal(paid.data.orderId, order!.id);
    assert.equal(paid.data.orderNumber, order!.orderNumber);
    assert.equal(paid.data.paymentStatus, "paid");
    assert.equal(paid.data.status, "processing");
    assert.ok(paid.id !== "", "events carry an id to resume from");
  });

  let second: Order | undefined;
  await t.test("list orders", async () => {
    await customer.api.POST("/v1/cart/items", { body: { productId: mugId, quantity: 1 } });
    second = (await customer.checkout(shipping)).order; // a key of its own
    assert.notEqual(second.id, order!.id);
    const orders = new Map<string, Order>();
    for await (const o of customer.paginate("/v1/orders", { limit: 1 })) {
      orders.set(o.id, o);
    }
    assert.equal(orders.size, 2);
    assert.equal(orders.get(order!.id)?.paymentStatus, "paid");
    assert.equal(orders.get(second.id)?.paymentStatus, "pending");
  });

  await t.test("cancel the second order", async () => {
    const { data, response, error } = await customer.api.POST("/v1/orders/{orderId}/cancel", {
      params: { path: { orderId: second!.id } },
    });
    assert.equal(response.status, 200, JSON.stringify(error));
    assert.equal(data!.status, "cancelled");
    const { data: mug } = await customer.api.GET("/v1/products/{productId}", { params: { path: { productId: mugId } } });
    assert.equal(mug!.stock, 50 - 2, "the cancelled order's stock is back");
  });

  await t.test("an out-of-stock checkout is a ShopProblem naming the product", async () => {
    const add = await customer.api.POST("/v1/cart/items", { body: { productId: scarceId, quantity: 2 } });
    assert.equal(add.response.status, 201);
    const err = await customer.checkout(shipping).then(
      () => assert.fail("checkout of 2 with 1 in stock succeeded"),
      (e: unknown) => e,
    );
    assert.ok(isShopProblem(err, problemTypes.insufficientStock), `got ${String(err)}`);
    assert.ok(err instanceof Error);
    assert.equal(err.status, 409);
    assert.equal(err.productId, scarceId);
    assert.equal(err.sku, `J-${run}-SCARCE`);
    assert.equal(err.requested, 2);
    assert.equal(err.available, 1);
    assert.equal(err.title, "Insufficient Stock");
  });

  await t.test("checkout keeps its key across a lost response and a 503", async () => {
    await customer.api.DELETE("/v1/cart");
    await customer.api.POST("/v1/cart/items", { body: { productId: mugId, quantity: 1 } });
    const sent: { key: string | null; status: number | "lost" }[] = [];
    const flaky = createShopClient({
      baseUrl,
      getToken: () => token,
      // The network between the client and the real server: the first
      // answer is lost after the server acted on it, the second is a 503
      // from a proxy in between; the third gets through.
      fetch: async (input, init) => {
        const req = new Request(input, init);
        if (new URL(req.url).pathname !== "/v1/checkout") {
          return fetch(req);
        }
        const key = req.headers.get("Idempotency-Key");
        if (sent.length === 1) {
          sent.push({ key, status: 503 });
          return new Response(JSON.stringify({ type: problemTypes.unavailable, title: "Service Unavailable", status: 503 }), {
            status: 503,
            headers: { "Content-Type": "application/problem+json", "Retry-After": "0" },
          });
        }
        const res = await fetch(req);
        if (sent.length === 0) {
          sent.push({ key, status: "lost" });
          await res.body?.cancel();
          throw new TypeError("fetch failed: connection reset");
        }
        sent.push({ key, status: res.status });
        return res;
      },
    });
    const { order: placed } = await flaky.checkout(shipping);
    assert.deepEqual(
      sent.map((s) => s.status),
      ["lost", 503, 200],
      "the lost first send placed the order; the retry is its replay",
    );
    assert.ok(sent.every((s) => s.key && s.key === sent[0]!.key), "one Idempotency-Key for every send of the call");
    let copies = 0;
    for await (const o of customer.paginate("/v1/orders")) {
      copies += o.id === placed.id ? 1 : 0;
    }
    assert.equal(copies, 1);

    // Concurrent sends of one attempt: whichever comes second waits out the
    // first (409 in flight, Retry-After) or replays it; one order either way.
    await customer.api.POST("/v1/cart/items", { body: { productId: mugId, quantity: 1 } });
    const key = randomUUID();
    const results = await Promise.all([1, 2, 3].map(() => customer.checkout(shipping, { idempotencyKey: key })));
    assert.equal(new Set(results.map((r) => r.order.id)).size, 1);
    assert.equal(new Set(results.map((r) => r.payment.paymentIntentId)).size, 1);
  });

  await t.test("a dropped stream resumes with Last-Event-ID, nothing lost or repeated", async () => {
    await customer.api.POST("/v1/cart/items", { body: { productId: mugId, quantity: 1 } });
    const { order: third } = await customer.checkout(shipping);
    const connections: (string | null)[] = [];
    const cutting = createShopClient({
      baseUrl,
      getToken: () => token,
      // The first connection breaks right after its first event, as a
      // proxy's idle timeout or a phone changing networks would.
      fetch: async (input, init) => {
        const req = new Request(input, init);
        const res = await fetch(req);
        if (!new URL(req.url).pathname.endsWith("/stream")) {
          return res;
        }
        connections.push(req.headers.get("Last-Event-ID"));
        if (connections.length > 1 || !res.body) {
          return res;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let seen = "";
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { value, done } = await reader.read();
            if (done) {
              controller.close();
              return;
            }
            controller.enqueue(value);
            seen += decoder.decode(value, { stream: true });
            if (/\ndata:[^\n]*\n\n/.test(seen)) {
              await reader.cancel();
              controller.error(new TypeError("network error: connection reset"));
            }
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      },
    });
    const events: ShopEvent[] = [];
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    let sawPaid!: () => void;
    const paidSeen = new Promise<void>((resolve) => (sawPaid = resolve));
    const signal = AbortSignal.timeout(30_000);
    const done = (async () => {
      for await (const e of cutting.streamOrder(third.id, { signal, onOpen: () => opened(), reconnectDelayMs: 50 })) {
        events.push(e);
        if (e.type === "order.paid") {
          sawPaid();
        }
        if (e.type === "order.cancelled") {
          break;
        }
      }
    })();
    await open;
    await pay(third.id); // order.paid: the first connection breaks after it
    await Promise.race([paidSeen, done]);
    // order.cancelled happens while the client reconnects, or after: it
    // arrives either way.
    const cancel = await adminShop.api.POST("/v1/orders/{orderId}/cancel", { params: { path: { orderId: third.id } } });
    assert.equal(cancel.response.status, 200, JSON.stringify(cancel.error));
    await done;
    assert.ok(!signal.aborted, "the stream ended at order.cancelled, not at the timeout");
    const paid = events.find((e) => e.type === "order.paid");
    assert.ok(paid, `events: ${events.map((e) => e.type).join(", ")}`);
    assert.ok(connections.length >= 2, "the client reconnected");
    assert.equal(connections[0], null, "the first connection starts live");
    assert.ok(
      connections[1] && events.some((e) => e.id === connections[1]),
      `the reconnect resumes after an event seen (Last-Event-ID ${connections[1]})`,
    );
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, "no event twice");
    assert.deepEqual(
      events.map((e) => e.type).filter((t) => t === "order.paid" || t === "order.cancelled"),
      ["order.paid", "order.cancelled"],
    );
  });

  await t.test("problems from paginate are ShopProblems too", async () => {
    const bad = customer.paginate("/v1/products", { limit: 1000 });
    await assert.rejects(
      async () => {
        for await (const _ of bad) {
          // unreachable: the first page is a 400
        }
      },
      (e: unknown) => isShopProblem(e, problemTypes.invalid) && e.status === 400 && e.errors.length > 0,
    );
  });
});
