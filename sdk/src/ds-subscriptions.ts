/**
 * Durable Streams subscriptions from the SDK (docs/streams.md "Subscriptions"; protocol sections
 * 6 and 7; decision 027): create or re-confirm, read and delete a subscription, and add or remove
 * its explicit streams. What `await bus.streamSubscriptions()` returns. Loaded with a dynamic
 * import on first use and handed the bus's one HTTP call, so a browser app that only publishes
 * and subscribes does not carry it (decision 025; the package test measures the main bundle).
 *
 * Verifying the webhooks a subscription sends is `verifyWebhook` in `@dovetail/sdk/webhooks`.
 */
import type { StreamLinkView, SubscriptionView } from "../../protocol/ds-subscriptions.ts";
import type { WaitOptions } from "./wait.ts";

export type { StreamLinkView, SubscriptionView };

/**
 * A subscription's configuration, as `PUT /v1/stream/__ds/subscriptions/{id}` takes it (protocol
 * 6.2): a glob `pattern` over stream paths (`*` one segment, `**` any number) and/or explicit
 * `streams`; a `webhook.url` (type `webhook`) or a `wake_stream` (type `pull-wake`).
 */
export interface StreamSubscriptionConfig {
  type: "webhook" | "pull-wake";
  pattern?: string;
  streams?: string[];
  webhook?: { url: string };
  wake_stream?: string;
  /** 1,000–600,000 ms; default 30,000. */
  lease_ttl_ms?: number;
  description?: string;
}

/** The bus's HTTP call, as the bus hands it over (path under the bus URL, JSON body, null for 204). */
export type SubscriptionsRequest = (method: string, path: string, body?: unknown, options?: WaitOptions) => Promise<unknown>;

/**
 * The subscriptions of the caller's tenant. Managing one needs `admin:>` (and `publish` on a
 * pull-wake subscription's wake stream); reading one needs `consume:>` or `admin:>`. Errors are
 * DovetailErrors with the server's code: `not_found`, `conflict` (another configuration under
 * that id), `invalid_field`, `WEBHOOK_URL_REJECTED`.
 *
 * @example
 * const subs = await bus.streamSubscriptions();
 * await subs.put("orders-agent", { type: "webhook", pattern: "orders/*", webhook: { url: "https://agent.example/wake" } });
 * const { streams } = await subs.get("orders-agent");
 * await subs.delete("orders-agent");
 */
export class StreamSubscriptions {
  readonly #request: SubscriptionsRequest;

  /** @internal use `bus.streamSubscriptions()` */
  constructor(request: SubscriptionsRequest) {
    this.#request = request;
  }

  #path(id: string, rest = ""): string {
    return `/v1/stream/__ds/subscriptions/${encodeURIComponent(id)}${rest}`;
  }

  /**
   * Create the subscription, or re-confirm it when the same configuration is already there (the
   * bus compares a hash of it); `conflict` when another configuration holds the id.
   */
  async put(id: string, config: StreamSubscriptionConfig, options?: WaitOptions): Promise<SubscriptionView> {
    return (await this.#request("PUT", this.#path(id), config, options)) as SubscriptionView;
  }

  /** The tenant's subscriptions, a page at a time in id order; pass `cursor` back for the next page (null at the end). */
  async list(page: { cursor?: string; limit?: number } = {}, options?: WaitOptions): Promise<{ subscriptions: SubscriptionView[]; cursor: string | null }> {
    const query = new URLSearchParams();
    if (page.cursor !== undefined) query.set("cursor", page.cursor);
    if (page.limit !== undefined) query.set("limit", String(page.limit));
    const q = query.toString();
    return (await this.#request("GET", `/v1/stream/__ds/subscriptions${q ? `?${q}` : ""}`, undefined, options)) as {
      subscriptions: SubscriptionView[];
      cursor: string | null;
    };
  }

  /** The subscription: its linked streams with their cursors (`acked_offset`), status, webhook signing metadata. */
  async get(id: string, options?: WaitOptions): Promise<SubscriptionView> {
    return (await this.#request("GET", this.#path(id), undefined, options)) as SubscriptionView;
  }

  /** Delete it: later callbacks and acks of its wakes fail (`not_found`). `not_found` when there is none. */
  async delete(id: string, options?: WaitOptions): Promise<void> {
    await this.#request("DELETE", this.#path(id), undefined, options);
  }

  /** Link explicit streams at their tails (a stream that does not exist yet: before its first append). */
  async addStreams(id: string, streams: string[], options?: WaitOptions): Promise<void> {
    await this.#request("POST", this.#path(id, "/streams"), { streams }, options);
  }

  /** Remove an explicit link (a glob link of the same stream stays). */
  async removeStream(id: string, stream: string, options?: WaitOptions): Promise<void> {
    await this.#request("DELETE", this.#path(id, `/streams/${encodeURIComponent(stream)}`), undefined, options);
  }
}
