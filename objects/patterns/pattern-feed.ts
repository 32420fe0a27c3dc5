/**
 * PatternFeed: the Durable Object behind one pattern socket (`GET /v1/patterns/ws`, decision 030).
 * The gateway makes a new one per socket (`newUniqueId()`) and hands it the socket with what the
 * credential may subscribe to; the object runs one {@link PatternSession}: sockets to every
 * matched topic, relayed to the client with their names.
 *
 * It keeps nothing in storage: while the client's socket is open the object stays in memory (its
 * sockets to the topics keep it there; a pattern socket does not hibernate), and when the socket
 * or the object ends, the client resumes on a new one with its per-topic cursors. The Directory
 * tells it about topics created later ({@link topicCreated}) until it unwatches.
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSE_CODES } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { encodeErrorFrame, PING_TEXT, PONG_TEXT } from "../../protocol/frames.ts";
import { readPatternUpgrade, type PatternUpgrade } from "../../protocol/pattern-request.ts";
import { parsePatternClientFrame } from "../../protocol/pattern-schemas.ts";
import { directoryObjectName, topicObjectName } from "../../protocol/topic-address.ts";
import type { ObjectsEnv } from "../env.ts";
import { patternMaxTopics } from "../limits.ts";
import { asDovetailError } from "../rpc-result.ts";
import { PatternSession } from "./pattern-session.ts";
import { sendQuietly } from "./upstream.ts";

export class PatternFeed extends DurableObject<ObjectsEnv> {
  #session: PatternSession | null = null;
  #socket: WebSocket | null = null;
  #upgrade: PatternUpgrade | null = null;
  #expiry: ReturnType<typeof setTimeout> | null = null;

  /** The gateway's upgrade: accept the client's socket. One socket per object. */
  override async fetch(request: Request): Promise<Response> {
    const upgrade = readPatternUpgrade(request);
    if (!upgrade) return new Response("not an upgrade request of the gateway", { status: 400 });
    if (this.#socket) return new Response("this pattern feed already has its socket", { status: 409 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    this.#socket = server;
    this.#upgrade = upgrade;
    const session = new PatternSession(upgrade.pattern, upgrade.scopes, upgrade.grant, patternMaxTopics(this.env), {
      send: (text) => this.#send(text),
      watch: (limit) => this.#directory(upgrade.tenant).patternWatch(this.ctx.id.toString(), upgrade.pattern, limit),
      open: (topic, req) => this.env.TOPIC.get(this.env.TOPIC.idFromName(topicObjectName(upgrade.tenant, topic))).fetch(req),
      createdAt: async (topic) => (await this.#directory(upgrade.tenant).get(topic))?.createdAt ?? null,
      end: (error, code) => this.#end(error, code),
    });
    this.#session = session;
    server.addEventListener("message", (e) => void this.#onMessage(e.data as string | ArrayBuffer));
    server.addEventListener("close", () => this.#gone());
    server.addEventListener("error", () => this.#gone());
    // A credential that expires ends the socket, as on topic sockets (close 4401).
    if (upgrade.grant.exp !== undefined) {
      this.#expiry = setTimeout(
        () => this.#end(new DovetailError("unauthorized", "the credential expired"), CLOSE_CODES.credentialEnded),
        Math.max(0, upgrade.grant.exp - Date.now()),
      );
    }
    server.send(session.welcome());
    return new Response(null, { status: 101, webSocket: client });
  }

  /** The Directory: `topic` was created at `at` and matches this feed's pattern. Answers whether this feed still follows new topics. */
  async topicCreated(topic: string, at: number): Promise<boolean> {
    const session = this.#session;
    if (!session?.live) return false;
    session.add(topic, at);
    return true;
  }

  #directory(tenant: string) {
    return this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(directoryObjectName(tenant)));
  }

  async #onMessage(raw: string | ArrayBuffer): Promise<void> {
    if (raw === PING_TEXT) {
      this.#send(PONG_TEXT);
      return;
    }
    const parsed = parsePatternClientFrame(raw);
    if (!parsed.ok) {
      this.#send(encodeErrorFrame(parsed.error, parsed.id));
      return;
    }
    const frame = parsed.frame;
    try {
      await this.#session?.onFrame(frame);
    } catch (error) {
      const id = "id" in frame ? frame.id : undefined;
      this.#send(encodeErrorFrame(asDovetailError(error, "pattern feed"), id));
      // A subscription that could not start ends its socket; a refused second `subscribe` does not.
      if (frame.type === "subscribe" && this.#session?.live === false) this.#end(null, CLOSE_CODES.normal);
    }
  }

  #send(text: string): boolean {
    return sendQuietly(this.#socket, text);
  }

  /** Close the client's socket (after `error`, when there is one) and stop. */
  #end(error: DovetailError | null, code: number): void {
    if (error) this.#send(encodeErrorFrame(error));
    try {
      this.#socket?.close(code, error?.message.slice(0, 120) ?? "pattern subscription ended");
    } catch {
      // already closed
    }
    this.#gone();
  }

  /** The client's socket is gone: close the topics' sockets and stop hearing about new topics. */
  #gone(): void {
    if (!this.#socket) return;
    this.#socket = null;
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#session?.close();
    const upgrade = this.#upgrade;
    if (upgrade) {
      this.ctx.waitUntil(
        this.#directory(upgrade.tenant)
          .patternUnwatch(this.ctx.id.toString())
          .catch((error: unknown) => console.error("pattern feed: could not unwatch", error)),
      );
    }
  }
}
