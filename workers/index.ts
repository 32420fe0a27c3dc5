/** Worker entry point: the gateway app, and the Durable Object classes wrangler binds. */
import { createApp } from "./app.ts";

export { Topic } from "../objects/topic.ts";
export { Keys } from "../objects/keys.ts";
export { Directory } from "../objects/directory.ts";
export { Subscription } from "../objects/subscription.ts";
export { SubscriptionSigning } from "../objects/subscription-signing.ts";
export { Registry } from "../objects/registry.ts";
export { PatternFeed } from "../objects/patterns/pattern-feed.ts";
export { Mail } from "../objects/mail.ts";

export default createApp();
