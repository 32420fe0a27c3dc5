/**
 * `bus.agents`: a thin handle. The registry client (agents.ts) is loaded with a dynamic import on
 * first use and handed the SDK pieces it runs with, so a browser app that only publishes and
 * subscribes does not carry it (decision 025; the package test measures the main bundle).
 */
import { ReconnectBudget } from "./backoff.ts";
import { closeCodeError } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { PING_TEXT } from "../../protocol/frames.ts";
import { waitFor, type WaitOptions } from "./wait.ts";
import type { AgentEvent, AgentInfo, AgentPage, AgentPresence, AgentQuery, AgentsClient, AgentsContext, AgentSpec, WatchOptions } from "./agents.ts";

/**
 * The agent registry (docs/agents.md): register this process's agents (present while their
 * connection lives), look agents up by id, capability and metadata, and watch their lifecycle.
 *
 * @example
 * const me = await bus.agents.register({ id: "summarizer-1", capabilities: ["summarize"] });
 * const { agents } = await bus.agents.list({ capability: "summarize" });
 * for await (const e of bus.agents.watch()) console.log(e.kind, e.agent.id);
 */
export class Agents {
  readonly #ctx: AgentsContext;
  #client: Promise<AgentsClient> | null = null;

  /** @internal use `bus.agents` */
  constructor(ctx: AgentsContext) {
    this.#ctx = ctx;
  }

  #load(): Promise<AgentsClient> {
    return (this.#client ??= import("./agents.ts").then(
      ({ AgentsClient }) => new AgentsClient(this.#ctx, { DovetailError, ReconnectBudget, closeCodeError, waitFor, pingText: PING_TEXT }),
    ));
  }

  /** Register an agent on a presence socket of its own; resolves once the registry stored it. */
  async register(spec: AgentSpec, options?: WaitOptions): Promise<AgentPresence> {
    return (await this.#load()).register(spec, options);
  }

  /** One page of agents in id order: present ones by default; by `capability`, `meta` fields, `present`. */
  async list(query?: AgentQuery, options?: WaitOptions): Promise<AgentPage> {
    return (await this.#load()).list(query, options);
  }

  /** One agent (`not_found` when it is not registered). */
  async get(id: string, options?: WaitOptions): Promise<AgentInfo> {
    return (await this.#load()).get(id, options);
  }

  /** Lifecycle events (registered, updated, left, crashed) from now on, or from `options.from`. */
  async *watch(options?: WatchOptions): AsyncGenerator<AgentEvent, void, undefined> {
    yield* (await this.#load()).watch(options);
  }
}
