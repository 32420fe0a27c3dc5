/**
 * @dovetail/sdk: the TypeScript client for the Dovetail agent message bus. Runs unchanged in
 * Node >= 22, browsers and Workers.
 *
 * @example
 * import { connect } from "@dovetail/sdk";
 * const bus = connect("http://127.0.0.1:8787", { token });
 * await bus.publish("agents.events", { hello: 1 });
 * for await (const msg of bus.subscribe("agents.events", { from: 0 })) console.log(msg.data);
 *
 * The admin client (API keys) is the subpath `@dovetail/sdk/admin` (`connectAdmin`), so that
 * code which only publishes and subscribes never loads it or zod.
 */
export { connect, Bus } from "./client.ts";
export type { ConnectOptions, TopicPattern, TopicInfo, TopicSettings, TopicEntry, TopicListOptions, TopicPage, ReadOptions, ReadResult } from "./client.ts";
export { Publisher } from "./publisher.ts";
export type { PublisherOptions } from "./publisher.ts";
export { Subscription } from "./subscription.ts";
export type { SubscribeOptions } from "./subscription.ts";
export { Consumer } from "./consumer-handle.ts";
export { PatternSubscription } from "./pattern-handle.ts";
export type { PatternMessage } from "./pattern-handle.ts";
export { Agents } from "./agents-handle.ts";
export type { AgentPresence, AgentFields, WatchOptions as AgentWatchOptions } from "./agents.ts";
export type { AgentEvent, AgentInfo, AgentPage, AgentQuery, AgentSpec } from "../../protocol/agents.ts";
export type { ConsumeOptions, Job, JobHandler } from "./consumer.ts";
export type { MailApi, MailWatchOptions } from "./mail.ts";
export type {
  InboxPage,
  InboxQuery,
  MailDelivery,
  MailImportance,
  MailMessage,
  MailState,
  RecipientState,
  SearchHit,
  SearchPage,
  SearchQuery,
  SendMail,
  SentMail,
  ThreadPage,
  ThreadQuery,
} from "../../protocol/mail.ts";
export type { StreamSubscriptions, StreamSubscriptionConfig, StreamLinkView, SubscriptionView } from "./ds-subscriptions.ts";
export type { RequestContext, RequestHandler, RequestOptions, ServeOptions, Server } from "./requests.ts";
export type { GroupInfo, GroupSettingsInput, GroupSettings, GroupStats, PendingJob, GroupMember } from "../../protocol/groups.ts";
export type { Message, PublishOptions } from "./message.ts";
export type { StatusEvent } from "./status.ts";
export type { Durability } from "../../protocol/durability.ts";
export type { ReconnectOptions } from "./backoff.ts";
export { DEFAULT_TIMEOUT_MS } from "./wait.ts";
export type { WaitOptions } from "./wait.ts";
export type { TokenSource } from "./token.ts";
export type { StandardSchema, InferOutput, SchemaIssue } from "./standard-schema.ts";
export { webSocketTransport, fetchTransport, webSocketUrlWithToken } from "./transport.ts";
export type { Transport, TransportTarget, SocketLike } from "./transport.ts";
export { DovetailError, ERROR_CODES, isErrorCode } from "../../protocol/errors.ts";
export type { ErrorCode, ErrorDetails } from "../../protocol/errors.ts";
export { isTopicName, topicNameProblem } from "../../protocol/topic-name.ts";
