// Swagger UI at /docs, driven in Debian's Chromium through playwright-core as
// an admin would: Authorize with a token, "Try it out" on createProduct,
// Execute, see 201. e2e_test.go sets SHOP_URL, ADMIN_EMAIL, ADMIN_PASSWORD,
// CHROMIUM and ARTIFACTS (where the screenshots are kept).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { chromium, type Page } from "playwright-core";

function env(name: string): string {
  const v = process.env[name];
  assert.ok(v, `${name} is not set (e2e_test.go sets it)`);
  return v;
}

test("Swagger UI: authorize as admin and create a product with Try it out", async (t) => {
  const baseUrl = env("SHOP_URL");
  const artifacts = env("ARTIFACTS");
  mkdirSync(artifacts, { recursive: true });

  const login = await fetch(`${baseUrl}/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: env("ADMIN_EMAIL"), password: env("ADMIN_PASSWORD") }),
  });
  assert.equal(login.status, 200);
  const { accessToken } = (await login.json()) as { accessToken: string };

  const browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(20_000);
  let shot = 0;
  const screenshot = async (p: Page, name: string) => {
    const file = join(artifacts, `${String(++shot).padStart(2, "0")}-${name}.png`);
    await p.screenshot({ path: file, fullPage: false });
    t.diagnostic(`screenshot ${file}`);
  };

  await page.goto(`${baseUrl}/docs/`);
  await page.locator(".swagger-ui .info .title").waitFor();
  assert.match(await page.locator(".swagger-ui .info .title").innerText(), /shopd/);
  await screenshot(page, "docs");

  // Authorize: the dialog lists every security scheme; the bearer one takes the token.
  await page.locator("button.authorize").first().click();
  const dialog = page.locator(".modal-ux");
  const bearer = dialog.locator("form", { hasText: "bearerAuth" });
  await bearer.locator("input").fill(accessToken);
  await bearer.locator("button.authorize").click();
  await bearer.locator("button.btn-done").click();
  await screenshot(page, "authorized");

  // createProduct, "Try it out", a body of our own, Execute.
  const op = page.locator("#operations-catalog-createProduct");
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  const sku = `UI-${randomUUID().slice(0, 8)}`;
  const body = { sku, name: "Made in Swagger UI", priceCents: 2500, stock: 3 };
  await op.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
  await screenshot(page, "try-it-out");
  await op.locator("button.execute").click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor();
  await op.locator(".live-responses-table").scrollIntoViewIfNeeded();
  await screenshot(page, "response");
  assert.equal((await status.innerText()).trim(), "201");
  const responseBody = await op.locator(".live-responses-table .response-col_description pre").first().innerText();
  assert.match(responseBody, new RegExp(`"sku": "${sku}"`));

  // The product exists for everyone, as created through the UI.
  const list = await fetch(`${baseUrl}/v1/products?q=${encodeURIComponent(sku)}`);
  const found = (await list.json()) as { items: { sku: string; priceCents: number }[] };
  assert.deepEqual(
    found.items.map((p) => [p.sku, p.priceCents]),
    [[sku, 2500]],
  );
});
