/**
 * shop.paginate: every item of a list endpoint, following `nextCursor`.
 */
import type { Client } from "openapi-fetch";

import { ShopProblem } from "./problem.js";
import type { paths } from "./schema.js";

type Page = { items: unknown[]; nextCursor: string | null };

/** Whether an operation answers 200 with a page and takes `?cursor=`. */
type IsList<Op> = Op extends {
  parameters: { query?: infer Q };
  responses: { 200: { content: { "application/json": Page } } };
}
  ? [NonNullable<Q>] extends [never]
    ? false
    : "cursor" extends keyof NonNullable<Q>
      ? true
      : false
  : false;

/** The paths whose GET answers a page `{ items, nextCursor }` and takes `?cursor=`. */
export type ListPath = {
  [P in keyof paths]: paths[P] extends { get: infer Op } ? (IsList<Op> extends true ? P : never) : never;
}[keyof paths];

type ListOperation<P extends ListPath> = paths[P]["get"];

/** The item type of a list endpoint. */
export type ListItem<P extends ListPath> =
  ListOperation<P>["responses"][200]["content"]["application/json"]["items"][number];

/** A list endpoint's query parameters, without the cursor (paginate owns it). */
export type PaginateQuery<P extends ListPath> = Omit<NonNullable<ListOperation<P>["parameters"]["query"]>, "cursor">;

/** Path parameters, for the lists under one resource, and an abort signal. */
export interface PaginateOptions<P extends ListPath> {
  /** The path's parameters, e.g. `{ orderId }` for `/v1/orders/{orderId}/events`. */
  path?: ListOperation<P>["parameters"] extends { path: infer A } ? A : never;
  /** Stops fetching pages. */
  signal?: AbortSignal;
}

/** See ShopClient.paginate. */
export async function* paginate<P extends ListPath>(
  api: Client<paths>,
  path: P,
  query?: PaginateQuery<P>,
  options: PaginateOptions<P> = {},
): AsyncGenerator<ListItem<P>, void, undefined> {
  // openapi-fetch's types take one literal path; the path is generic here,
  // and the result is typed by ListItem instead.
  const get = api.GET as unknown as (
    path: string,
    init: { params: { query: Record<string, unknown>; path?: unknown }; signal?: AbortSignal },
  ) => Promise<{ data?: { items: ListItem<P>[]; nextCursor?: string | null }; error?: unknown; response: Response }>;
  let cursor: string | null | undefined;
  do {
    const q: Record<string, unknown> = { ...(query ?? {}) };
    if (cursor) {
      q.cursor = cursor;
    }
    const res = await get(path, { params: { query: q, path: options.path }, signal: options.signal });
    if (res.data === undefined) {
      throw await ShopProblem.fromResponse(res.response, res.error);
    }
    yield* res.data.items;
    cursor = res.data.nextCursor;
  } while (cursor);
}
