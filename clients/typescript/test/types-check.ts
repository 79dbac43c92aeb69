// Compile-time checks of what the generated types accept. tsc fails the
// build if a line without @ts-expect-error does not type-check, or if a line
// with it does.
import { createShopClient, type ProductCreate, type ShopEvent } from "../src/index.js";

const shop = createShopClient({ baseUrl: "http://127.0.0.1:8080", token: "t" });

// The README's minimal create: the fields with a server-side default
// (currency, lowStockThreshold, isActive, isFeatured) are optional, as in the API.
const minimal: ProductCreate = { sku: "MUG-001", name: "Coffee Mug", priceCents: 1500, stock: 20 };
export const created = shop.api.POST("/v1/products", { body: minimal });
export const inline = shop.api.POST("/v1/products", {
  body: { sku: "MUG-002", name: "Tea Mug", priceCents: 1200, stock: 5, category: "kitchen" },
});

// @ts-expect-error priceCents is required
export const noPrice: ProductCreate = { sku: "MUG-003", name: "Mug", stock: 1 };
// @ts-expect-error fields outside the schema are refused, as the API does (additionalProperties: false)
export const extra: ProductCreate = { sku: "MUG-004", name: "Mug", priceCents: 1, stock: 1, colour: "red" };

// Responses keep their defaults as present: a product always has a currency.
export async function currencyOf(id: string): Promise<string | undefined> {
  const { data } = await shop.api.GET("/v1/products/{productId}", { params: { path: { productId: id } } });
  return data?.currency;
}

// paginate knows each list's item type and query, and refuses non-lists.
export async function names(): Promise<string[]> {
  const out: string[] = [];
  for await (const p of shop.paginate("/v1/products", { category: "kitchen", limit: 100 })) {
    out.push(p.name);
  }
  for await (const o of shop.paginate("/v1/orders", { status: "pending" })) {
    out.push(o.orderNumber);
  }
  for await (const e of shop.paginate("/v1/orders/{orderId}/events", {}, { path: { orderId: "o" } })) {
    out.push(e.type);
  }
  // @ts-expect-error /v1/cart is not a list
  shop.paginate("/v1/cart");
  return out;
}

export async function firstPaid(orderId: string): Promise<ShopEvent | undefined> {
  for await (const ev of shop.streamOrder(orderId)) {
    if (ev.type === "order.paid") {
      return ev;
    }
  }
  return undefined;
}
