/**
 * Subscription: one Durable Streams subscription (protocol sections 6 and 7), one Durable Object
 * per tenant and id (`tenant:id`, protocol/ds-subscriptions.ts). It keeps the configuration, one
 * cursor per linked stream, the wake in flight with its generation and lease, and the webhook
 * retry schedule (objects/subscription-store.ts); it learns of appends from the topics it links
 * (objects/subscription-links.ts) and of new streams from the tenant's Directory; its one alarm
 * is the earlier of the lease deadline and the next webhook attempt. Decision 027.
 *
 * Only the gateway calls it (workers/routes/ds-subscriptions.ts), and the topics (streamMoved).
 * Expected refusals travel as RpcResult values (objects/rpc-result.ts).
 *
 * @example
 * const sub = env.DS_SUBSCRIPTION.get(env.DS_SUBSCRIPTION.idFromName(subscriptionObjectName(tenant, "sub-1")));
 * unwrap(await sub.put(config, "https://bus.example/v1/stream"));
 */
import { DurableObject } from "cloudflare:workers";
import { jwtVerify, SignJWT } from "jose";
import { base64ToBytes, bytesToBase64 } from "../protocol/base64.ts";
import {
  configText,
  globMatches,
  parseSubscriptionObjectName,
  SIGNING_OBJECT_NAME,
  subscriptionObjectName,
  type ClaimView,
  type StreamLinkView,
  type SubscriptionConfig,
  type SubscriptionView,
  type WakeEvent,
  type WakeRequest,
  type WakeStreamView,
  type WebhookBody,
} from "../protocol/ds-subscriptions.ts";
import { DovetailError } from "../protocol/errors.ts";
import { storedBody } from "../protocol/stored-message.ts";
import { directoryObjectName, topicObjectName } from "../protocol/topic-address.ts";
import { utf8ByteLength } from "./bytes.ts";
import type { ObjectsEnv } from "./env.ts";
import { rpcResult, type RpcResult } from "./rpc-result.ts";
import { encodeOffset, parseOffset } from "./stream-format.ts";
import type { StreamMovedReply } from "./subscription-links.ts";
import { retryDelayMs } from "./subscription-backoff.ts";
import { SubscriptionStore, type Link, type SubscriptionState } from "./subscription-store.ts";

/** A webhook request that has not answered after this counts as failed. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Most bytes of a webhook's answer read (it only needs `{"done": true}`); a longer answer counts as one without `done`. */
export const MAX_WEBHOOK_ANSWER_BYTES = 64 * 1024;

/** The response's text, or null when it is longer than `max` bytes (the rest is not read). */
async function readCapped(res: Response, max: number): Promise<string | null> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    parts.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Callback and claim tokens expire after this; the lease and generation end them sooner. */
export const TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
/** Most streams linked at once while a subscription backfills (RPCs in flight). */
const LINK_CONCURRENCY = 32;

/** What a callback, ack or release is. */
export type SettleKind = "callback" | "ack" | "release";

/** A subscription object's answer to `put`. */
export interface PutResult {
  created: boolean;
  view: SubscriptionView;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}${bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

const base64url = (bytes: Uint8Array) => bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export class Subscription extends DurableObject<ObjectsEnv> {
  readonly #store: SubscriptionStore;
  #signer: Promise<{ kid: string; key: CryptoKey }> | null = null;
  #delivering = false;
  #linkCache: Map<string, Link> | null = null;

  constructor(ctx: DurableObjectState, env: ObjectsEnv) {
    super(ctx, env);
    this.#store = new SubscriptionStore(ctx.storage.sql);
  }

  /** The links, read from storage once per life; every change goes through #saveLink / #deleteLink. Link objects are never changed in place. */
  #links(): Map<string, Link> {
    this.#linkCache ??= this.#store.links();
    return this.#linkCache;
  }

  #saveLink(link: Link): void {
    this.#store.saveLink(link);
    this.#links().set(link.path, link);
  }

  #deleteLink(path: string): void {
    this.#store.deleteLink(path);
    this.#links().delete(path);
  }

  #clearLinks(): void {
    this.#store.clearLinks();
    this.#linkCache = new Map();
  }

  /** The links in path order, as the APIs list them. */
  #sortedLinks(): Link[] {
    return [...this.#links().values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  #address(): { tenant: string; id: string } {
    const address = parseSubscriptionObjectName(this.ctx.id.name);
    if (!address) throw new DovetailError("internal", `subscription object without a name (${String(this.ctx.id.name)})`);
    return address;
  }

  #topic(path: string) {
    return this.env.TOPIC.get(this.env.TOPIC.idFromName(topicObjectName(this.#address().tenant, path)));
  }

  #directory() {
    return this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(directoryObjectName(this.#address().tenant)));
  }

  /** The live subscription, or `not_found` (never created, or deleted). */
  #live(): SubscriptionState {
    const state = this.#store.state();
    if (!state || state.deleted) throw new DovetailError("not_found", `no subscription ${this.#address().id}`);
    return state;
  }

  // -------------------------------------------------------------------------------------------
  // Control (protocol 6)

  /** Create (201), re-confirm the same configuration (200), or refuse another one (409). */
  async put(config: SubscriptionConfig, base: string): Promise<RpcResult<PutResult>> {
    return rpcResult(async () => {
      const hash = await sha256Hex(configText(config));
      const old = this.#store.state();
      if (old && !old.deleted) {
        if (old.hash !== hash) throw new DovetailError("conflict", "a subscription with this id exists with a different configuration");
        return { created: false, view: await this.#view(old) };
      }
      const state: SubscriptionState = {
        config,
        hash,
        createdAt: Date.now(),
        deleted: false,
        base,
        secret: base64url(crypto.getRandomValues(new Uint8Array(32))),
        generation: old?.generation ?? 0,
        wake: null,
        retry: null,
        status: "active",
      };
      this.#clearLinks();
      this.#store.saveState(state);
      await this.ctx.storage.deleteAlarm();
      const { id } = this.#address();
      const existing = await this.#directory().dsWatch(id, config.pattern === null ? [] : [config.pattern], config.streams, true);
      // An explicit stream that does not exist yet is linked from its start; existing ones at their tails.
      for (const path of config.streams) if (!existing.includes(path)) this.#linkLocal(path, { explicit: true }, 0, 0);
      await this.#linkExisting(existing);
      return { created: true, view: await this.#view(this.#live()) };
    });
  }

  async get(): Promise<RpcResult<SubscriptionView>> {
    return rpcResult(() => this.#view(this.#live()));
  }

  /** Tombstone: later callbacks, acks and releases fail, and no cursor moves (protocol 6.3). */
  async remove(): Promise<RpcResult<null>> {
    return rpcResult(async () => {
      const state = this.#live();
      state.deleted = true;
      state.wake = null;
      state.retry = null;
      this.#store.saveState(state);
      this.#clearLinks();
      await this.ctx.storage.deleteAlarm();
      await this.#directory().dsUnwatch(this.#address().id, null);
      return null;
    });
  }

  /** Link explicit streams at their tails (protocol 6.4); linking again changes nothing. */
  async addStreams(paths: string[]): Promise<RpcResult<null>> {
    return rpcResult(async () => {
      const state = this.#live();
      state.config.streams = [...new Set([...state.config.streams, ...paths])].sort();
      this.#store.saveState(state);
      const links = this.#links();
      const fresh = paths.filter((p) => !links.get(p)?.explicit);
      const existing = await this.#directory().dsWatch(this.#address().id, [], fresh, false);
      for (const path of fresh) if (!existing.includes(path)) this.#linkLocal(path, { explicit: true }, 0, 0);
      await this.#linkExisting(existing);
      return null;
    });
  }

  /** Remove an explicit link; a glob link of the same stream stays (protocol 6.4). */
  async removeStream(path: string): Promise<RpcResult<null>> {
    return rpcResult(async () => {
      const state = this.#live();
      state.config.streams = state.config.streams.filter((p) => p !== path);
      this.#store.saveState(state);
      const link = this.#links().get(path);
      if (link?.explicit) {
        if (link.glob) this.#saveLink({ ...link, explicit: false });
        else this.#deleteLink(path);
      }
      await this.#directory().dsUnwatch(this.#address().id, [path]);
      return null;
    });
  }

  /** Record a link here (not in the topic). `acked` applies to a new link only. */
  #linkLocal(path: string, kind: { explicit?: boolean; glob?: boolean }, acked: number, tail: number): Link {
    const old = this.#links().get(path);
    const link: Link = old
      ? { ...old, explicit: old.explicit || kind.explicit === true, glob: old.glob || kind.glob === true, tail: Math.max(old.tail, tail) }
      : { path, explicit: kind.explicit === true, glob: kind.glob === true, acked, tail };
    this.#saveLink(link);
    return link;
  }

  /** Backfill: link existing streams at their current tails; the topics record the links. */
  async #linkExisting(paths: string[]): Promise<void> {
    const { id } = this.#address();
    for (let i = 0; i < paths.length; i += LINK_CONCURRENCY) {
      await Promise.all(
        paths.slice(i, i + LINK_CONCURRENCY).map(async (path) => {
          const { exists, tail } = await this.#topic(path).dsSubscriptionLink(path, id, true);
          const state = this.#store.state();
          if (!state || state.deleted || !this.#wants(state.config, path)) return;
          const old = this.#links().get(path);
          const kind = { glob: state.config.pattern !== null && globMatches(state.config.pattern, path), explicit: state.config.streams.includes(path) };
          if (!exists) return;
          // A new link starts at the tail; an explicit link made before the stream existed keeps its start.
          this.#linkLocal(path, kind, old ? old.acked : tail, tail);
        }),
      );
    }
  }

  #wants(config: SubscriptionConfig, path: string): boolean {
    return config.streams.includes(path) || (config.pattern !== null && globMatches(config.pattern, path));
  }

  async #view(state: SubscriptionState): Promise<SubscriptionView> {
    const { id } = this.#address();
    const view: SubscriptionView = {
      id,
      subscription_id: id,
      type: state.config.type,
      pattern: state.config.pattern,
      streams: this.#sortedLinks().map((l) => this.#linkView(l)),
      wake_stream: state.config.wakeStream,
      lease_ttl_ms: state.config.leaseTtlMs,
      created_at: new Date(state.createdAt).toISOString(),
      status: state.status,
      description: state.config.description,
    };
    if (state.config.webhookUrl !== null) {
      const { kid } = await this.#signingKey();
      view.webhook = { url: state.config.webhookUrl, signing: { alg: "ed25519", kid, jwks_url: `${state.base}/__ds/jwks.json` } };
    }
    return view;
  }

  #linkView(link: Link): StreamLinkView {
    return { path: link.path, link_type: link.explicit ? "explicit" : "glob", acked_offset: encodeOffset(link.acked) };
  }

  #wakeView(link: Link, tail: number): WakeStreamView {
    return { ...this.#linkView(link), tail_offset: encodeOffset(tail), has_pending: tail > link.acked };
  }

  // -------------------------------------------------------------------------------------------
  // Appends (from the topics)

  /**
   * Stream `path` now ends at `tail`. `from`: the topic was just created and the Directory says
   * this subscription watches it: link it at `from` (before the append that created it).
   */
  async streamMoved(path: string, tail: number, from: number | null): Promise<StreamMovedReply> {
    const state = this.#store.state();
    if (!state || state.deleted || !this.#wants(state.config, path)) return { linked: false };
    const old = this.#links().get(path);
    if (!old && from === null) return { linked: false };
    const kind = { glob: state.config.pattern !== null && globMatches(state.config.pattern, path), explicit: state.config.streams.includes(path) };
    let link = this.#linkLocal(path, kind, from ?? tail, tail);
    // A topic deleted and made again starts its offsets over: follow it down.
    if (from !== null && (link.acked > from || link.tail !== tail)) this.#saveLink((link = { ...link, acked: Math.min(link.acked, from), tail }));
    if (state.wake === null && link.tail > link.acked) await this.#createWake(state, path, null);
    return { linked: true };
  }

  /**
   * Stream `path` (its topic) was deleted: its offsets start over. A glob link goes (the Directory
   * links the stream again if it is created again); an explicit link stays, from the start.
   */
  async streamDeleted(path: string): Promise<void> {
    const link = this.#links().get(path);
    if (!link) return;
    if (link.explicit) this.#saveLink({ ...link, glob: false, acked: 0, tail: 0 });
    else this.#deleteLink(path);
  }

  // -------------------------------------------------------------------------------------------
  // Wakes (protocol 7)

  #pending(links: Map<string, Link>): Link | null {
    for (const link of links.values()) if (link.tail > link.acked) return link;
    return null;
  }

  /** A new wake when the subscription is idle and some stream is past its cursor. */
  async #maybeWake(state: SubscriptionState): Promise<boolean> {
    if (state.wake !== null) return false;
    const pending = this.#pending(this.#links());
    if (!pending) return false;
    await this.#createWake(state, pending.path, null);
    return true;
  }

  async #createWake(state: SubscriptionState, stream: string, holder: string | null): Promise<void> {
    const now = Date.now();
    state.generation += 1;
    const links = this.#links();
    const snapshot: Record<string, number> = {};
    for (const link of links.values()) snapshot[link.path] = link.tail;
    const webhook = state.config.type === "webhook";
    state.wake = { id: randomId("w_"), holder, leaseUntil: webhook || holder !== null ? now + state.config.leaseTtlMs : null, snapshot };
    if (webhook) state.retry = { attempt: 0, nextAt: now };
    this.#store.saveState(state);
    await this.#scheduleAlarm(state);
    if (webhook) this.ctx.waitUntil(this.#deliver());
    else if (holder === null) this.ctx.waitUntil(this.#writeWakeEvent(state, stream));
  }

  /** Pull-wake: append the wake event to the wake stream, which the application created (protocol 7.2). */
  async #writeWakeEvent(state: SubscriptionState, stream: string): Promise<void> {
    const wakeStream = state.config.wakeStream!;
    const event: WakeEvent = { type: "wake", subscription_id: this.#address().id, stream, generation: state.generation, ts: Date.now() };
    const data = JSON.stringify(event);
    try {
      const result = await this.#topic(wakeStream).dsAppend(wakeStream, {
        contentType: "application/json",
        payload: { json: true, bodies: storedBody({ data }), sizes: Uint32Array.of(utf8ByteLength(data)) },
        close: false,
        streamSeq: null,
        producer: null,
      });
      if (!result.ok) console.error(`subscription: wake event not written to ${wakeStream}: ${result.error.code} ${result.error.message}`);
    } catch (error) {
      console.error(`subscription: wake event not written to ${wakeStream}`, error);
    }
  }

  async #scheduleAlarm(state: SubscriptionState): Promise<void> {
    const times = [state.wake?.leaseUntil ?? null, state.retry?.nextAt ?? null].filter((t): t is number => t !== null);
    if (times.length === 0 || state.deleted) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.min(...times));
  }

  /** The lease deadline and the webhook retry schedule. */
  override async alarm(): Promise<void> {
    const state = this.#store.state();
    if (!state || state.deleted) return;
    const now = Date.now();
    if (state.retry && state.retry.nextAt <= now) {
      if (!this.#delivering) await this.#deliver();
      return;
    }
    if (state.wake && state.wake.leaseUntil !== null && state.wake.leaseUntil <= now) {
      // The lease ended: the holder and its token are fenced; pending work makes a new wake (protocol 7.3).
      state.wake = null;
      state.retry = null;
      this.#store.saveState(state);
      if (!(await this.#maybeWake(state))) await this.#scheduleAlarm(state);
      return;
    }
    await this.#scheduleAlarm(state);
  }

  // -------------------------------------------------------------------------------------------
  // Webhooks (protocol 7.1)

  #signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    this.#signer ??= (async () => {
      const signing = this.env.DS_SIGNING.get(this.env.DS_SIGNING.idFromName(SIGNING_OBJECT_NAME));
      const { kid, privateJwk } = await signing.privateKey();
      const key = await crypto.subtle.importKey("jwk", privateJwk, { name: "Ed25519" }, false, ["sign"]);
      return { kid, key };
    })().catch((error: unknown) => {
      this.#signer = null;
      throw error;
    });
    return this.#signer;
  }

  async #token(state: SubscriptionState): Promise<string> {
    const { tenant, id } = this.#address();
    return new SignJWT({ tn: tenant, sid: id, g: state.generation, w: state.wake!.id })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt()
      .setExpirationTime(Math.floor((Date.now() + TOKEN_TTL_MS) / 1000))
      .sign(base64ToBytes(state.secret.replace(/-/g, "+").replace(/_/g, "/")));
  }

  /** One attempt to deliver the wake in flight; the next is scheduled before it starts. */
  async #deliver(): Promise<void> {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      // A `{"done": true}` that leaves work pending makes the next wake at once: send it in this
      // loop rather than by the alarm (local workerd's alarm adds a round of its own).
      for (;;) {
        await this.#attempt();
        const state = this.#store.state();
        if (!state || state.deleted || !state.retry || state.retry.attempt !== 0 || state.retry.nextAt > Date.now()) break;
      }
    } finally {
      this.#delivering = false;
    }
  }

  async #attempt(): Promise<void> {
    {
      const state = this.#store.state();
      if (!state || state.deleted || !state.wake || !state.retry || state.config.type !== "webhook") return;
      const wake = state.wake;
      const links = this.#links();
      // Each attempt reports the tails as they are now (same wake, same generation).
      wake.snapshot = {};
      for (const link of links.values()) wake.snapshot[link.path] = link.tail;
      const body: WebhookBody = {
        subscription_id: this.#address().id,
        wake_id: wake.id,
        generation: state.generation,
        streams: this.#sortedLinks().map((l) => this.#wakeView(l, l.tail)),
        callback_url: `${state.base}/__ds/subscriptions/${encodeURIComponent(this.#address().id)}/callback`,
        callback_token: await this.#token(state),
      };
      const raw = JSON.stringify(body);
      const { kid, key } = await this.#signingKey();
      const t = Math.floor(Date.now() / 1000);
      const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, new TextEncoder().encode(`${t}.${raw}`)));
      // Persist the next attempt before this one, so an eviction or a crash mid-request keeps the schedule.
      const failures = state.retry.attempt;
      state.retry = { attempt: failures, nextAt: Date.now() + WEBHOOK_TIMEOUT_MS + retryDelayMs(failures + 1) };
      wake.leaseUntil = Math.max(wake.leaseUntil ?? 0, state.retry.nextAt + state.config.leaseTtlMs);
      this.#store.saveState(state);
      await this.#scheduleAlarm(state);

      let ok = false;
      let done = false;
      try {
        const res = await fetch(state.config.webhookUrl!, {
          method: "POST",
          headers: { "content-type": "application/json", "webhook-signature": `t=${t},kid=${kid},ed25519=${base64url(signature)}` },
          body: raw,
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
          // A redirect could lead to an address the URL check refused (SSRF): it counts as a failure.
          redirect: "manual",
        });
        ok = res.ok;
        const text = await readCapped(res, MAX_WEBHOOK_ANSWER_BYTES);
        if (ok && text !== null && text.trim() !== "") {
          try {
            done = (JSON.parse(text) as { done?: unknown } | null)?.done === true;
          } catch {
            // Not JSON: an answer without `done`.
          }
        }
      } catch {
        ok = false; // refused, reset, timed out
      }

      const now = Date.now();
      const after = this.#store.state();
      // The wake may have ended meanwhile (a callback that came before the answer, a delete).
      if (!after || after.deleted || after.wake?.id !== wake.id) return;
      if (ok) {
        after.retry = null;
        after.status = "active";
        after.wake!.leaseUntil = now + after.config.leaseTtlMs;
        after.wake!.snapshot = wake.snapshot;
        if (done) {
          this.#ackSnapshot(after.wake!.snapshot);
          after.wake = null;
          this.#store.saveState(after);
          if (!(await this.#maybeWake(after))) await this.#scheduleAlarm(after);
          return;
        }
      } else {
        after.status = "failed";
        after.retry = { attempt: failures + 1, nextAt: now + retryDelayMs(failures + 1) };
        after.wake!.leaseUntil = after.retry.nextAt + after.config.leaseTtlMs;
      }
      this.#store.saveState(after);
      await this.#scheduleAlarm(after);
    }
  }

  /** `{"done": true}`: every stream's cursor moves to the tail the wake reported (never back). */
  #ackSnapshot(snapshot: Record<string, number>): void {
    const links = this.#links();
    for (const [path, tail] of Object.entries(snapshot)) {
      const link = links.get(path);
      if (link && tail > link.acked) this.#saveLink({ ...link, acked: tail });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Pull-wake (protocol 7.2) and settling (7.1, 7.2, 7.3)

  /** Take the lease: the wake in flight, or a new one when work is pending. */
  async claim(worker: string): Promise<RpcResult<ClaimView>> {
    return rpcResult(async () => {
      let state = this.#live();
      if (state.config.type !== "pull-wake") throw new DovetailError("invalid_field", "claim is for pull-wake subscriptions");
      const now = Date.now();
      if (state.wake?.holder != null && (state.wake.leaseUntil ?? 0) > now) {
        throw new DovetailError("ALREADY_CLAIMED", `worker ${state.wake.holder} holds the lease`, {
          current_holder: state.wake.holder,
          generation: state.generation,
        });
      }
      if (state.wake?.holder != null) {
        // Lease over and the alarm not yet run: end that wake here.
        state.wake = null;
        this.#store.saveState(state);
      }
      if (!state.wake && !this.#pending(this.#links())) {
        // A notification may still be on its way: ask the streams for their tails.
        await this.#refreshTails();
        state = this.#live();
        if (state.wake?.holder != null)
          throw new DovetailError("ALREADY_CLAIMED", `worker ${state.wake.holder} holds the lease`, {
            current_holder: state.wake.holder,
            generation: state.generation,
          });
      }
      const links = this.#links();
      if (!state.wake) {
        const pending = this.#pending(links);
        if (!pending) throw new DovetailError("NO_PENDING_WORK", "no linked stream has messages past its cursor");
        await this.#createWake(state, pending.path, worker);
        state = this.#live();
      }
      const wake = state.wake!;
      wake.holder = worker;
      wake.leaseUntil = Date.now() + state.config.leaseTtlMs;
      wake.snapshot = {};
      for (const link of links.values()) wake.snapshot[link.path] = link.tail;
      this.#store.saveState(state);
      await this.#scheduleAlarm(state);
      return {
        wake_id: wake.id,
        generation: state.generation,
        token: await this.#token(state),
        streams: this.#sortedLinks().map((l) => this.#wakeView(l, l.tail)),
        lease_ttl_ms: state.config.leaseTtlMs,
      };
    });
  }

  async #refreshTails(): Promise<void> {
    const { id } = this.#address();
    const paths = [...this.#links().keys()];
    for (let i = 0; i < paths.length; i += LINK_CONCURRENCY) {
      await Promise.all(
        paths.slice(i, i + LINK_CONCURRENCY).map(async (path) => {
          const { exists, tail } = await this.#topic(path).dsSubscriptionLink(path, id, true);
          const link = this.#links().get(path);
          if (exists && link && tail > link.tail) this.#saveLink({ ...link, tail });
        }),
      );
    }
  }

  /**
   * A webhook callback, a pull-wake ack (heartbeat, or `done`) or a release. The token, then the
   * generation and wake id must be the current ones (else `FENCED`); acks are checked all
   * together before any is applied. Answers `{ ok, next_wake }`, or null for a release.
   */
  async settle(kind: SettleKind, token: string, request: WakeRequest): Promise<RpcResult<{ ok: true; next_wake: boolean } | null>> {
    return rpcResult(async () => {
      let state = this.#live();
      const webhook = state.config.type === "webhook";
      if ((kind === "callback") !== webhook) {
        throw new DovetailError(
          "invalid_field",
          webhook ? "a webhook subscription settles with …/callback" : "a pull-wake subscription settles with …/ack and …/release",
        );
      }
      let claims: Record<string, unknown>;
      try {
        ({ payload: claims } = await jwtVerify(token, base64ToBytes(state.secret.replace(/-/g, "+").replace(/_/g, "/")), { algorithms: ["HS256"] }));
      } catch {
        throw new DovetailError("unauthorized", "the token is not a valid token of this subscription (wrong subscription, expired, or altered)");
      }
      if (claims.sid !== this.#address().id) throw new DovetailError("unauthorized", "the token belongs to another subscription");
      const now = Date.now();
      const wake = state.wake;
      const leaseOver = wake?.leaseUntil != null && wake.leaseUntil <= now && state.retry === null;
      if (
        !wake ||
        leaseOver ||
        claims.g !== state.generation ||
        claims.w !== wake.id ||
        request.generation !== state.generation ||
        request.wake_id !== wake.id
      ) {
        throw new DovetailError("FENCED", "this wake is not the current one: its generation, wake id or lease is over; nothing was applied");
      }
      if (kind === "release") {
        state.wake = null;
        this.#store.saveState(state);
        if (!(await this.#maybeWake(state))) await this.#scheduleAlarm(state);
        return null;
      }
      if (request.acks.length > 0) await this.#applyAcks(request.acks);
      state = this.#live();
      if (state.wake?.id !== wake.id) throw new DovetailError("FENCED", "this wake ended while its acks were checked; nothing was applied");
      if (!request.done) {
        state.wake.leaseUntil = Date.now() + state.config.leaseTtlMs;
        this.#store.saveState(state);
        await this.#scheduleAlarm(state);
        return { ok: true, next_wake: false };
      }
      state.wake = null;
      state.retry = null;
      this.#store.saveState(state);
      const next = await this.#maybeWake(state);
      if (!next) await this.#scheduleAlarm(state);
      return { ok: true, next_wake: next };
    });
  }

  /** Check every ack, then apply them all (none if one is refused). */
  async #applyAcks(acks: { stream: string; offset: string }[]): Promise<void> {
    const moves = new Map<string, number>();
    let asked = false;
    for (const ack of acks) {
      let link = this.#links().get(ack.stream);
      if (!link) throw new DovetailError("INVALID_OFFSET", `ack names ${ack.stream.slice(0, 200)}, which this subscription does not link`);
      const parsed = parseOffset(ack.offset);
      if (parsed?.kind !== "at") throw new DovetailError("INVALID_OFFSET", `ack offset ${ack.offset.slice(0, 64)} is not an offset of this server`);
      if (parsed.next > link.tail && !asked) {
        // The tail heard may lag the stream: ask once.
        asked = true;
        await this.#refreshTails();
        link = this.#links().get(ack.stream);
        if (!link) throw new DovetailError("INVALID_OFFSET", `ack names ${ack.stream.slice(0, 200)}, which this subscription no longer links`);
      }
      if (parsed.next < link.acked) throw new DovetailError("INVALID_OFFSET", `ack offset of ${ack.stream} is behind its cursor ${encodeOffset(link.acked)}`);
      if (parsed.next > link.tail) {
        throw new DovetailError("INVALID_OFFSET", `ack offset of ${ack.stream} is past the stream's tail ${encodeOffset(link.tail)}`);
      }
      moves.set(ack.stream, Math.max(moves.get(ack.stream) ?? 0, parsed.next));
    }
    for (const [path, next] of moves) {
      const link = this.#links().get(path);
      if (link && next > link.acked) this.#saveLink({ ...link, acked: next });
    }
  }
}

/** The object of a tenant's subscription. */
export function subscriptionStub(env: Pick<ObjectsEnv, "DS_SUBSCRIPTION">, tenant: string, id: string) {
  return env.DS_SUBSCRIPTION.get(env.DS_SUBSCRIPTION.idFromName(subscriptionObjectName(tenant, id)));
}
