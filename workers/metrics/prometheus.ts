/**
 * Metrics in the Prometheus text exposition format (version 0.0.4), as `GET /metrics` answers
 * (docs/observability.md lists every family). One function per view: a tenant's, and the
 * operator's, which adds a `tenant` label to every series.
 *
 * @example
 * const text = renderPrometheus([{ tenant: null, metrics: await directory.metrics() }], deploymentCounts);
 */
import { DURATION_BUCKETS_S, addHistogram, emptyHistogram, type GatewayCounters, type Histogram, type TenantMetrics } from "../../protocol/metrics.ts";

/** The content type Prometheus expects for this format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Record<string, string>;

interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  lines: string[];
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function num(n: number): string {
  return Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN";
}

class Families {
  readonly #families = new Map<string, Family>();

  family(name: string, type: Family["type"], help: string): Family {
    let f = this.#families.get(name);
    if (!f) this.#families.set(name, (f = { name, type, help, lines: [] }));
    return f;
  }

  sample(name: string, type: "counter" | "gauge", help: string, labels: Labels, value: number): void {
    this.family(name, type, help).lines.push(`${name}${labelText(labels)} ${num(value)}`);
  }

  histogram(name: string, help: string, labels: Labels, h: Histogram): void {
    const f = this.family(name, "histogram", help);
    let cumulative = 0;
    for (let i = 0; i < DURATION_BUCKETS_S.length; i++) {
      cumulative += h.buckets[i] ?? 0;
      f.lines.push(`${name}_bucket${labelText({ ...labels, le: String(DURATION_BUCKETS_S[i]) })} ${cumulative}`);
    }
    f.lines.push(`${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${h.count}`);
    f.lines.push(`${name}_sum${labelText(labels)} ${num(h.sum)}`);
    f.lines.push(`${name}_count${labelText(labels)} ${h.count}`);
  }

  text(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.lines);
    }
    return `${out.join("\n")}\n`;
  }
}

/** One tenant's metrics; `tenant` is null in a tenant's own view (no tenant label). */
export interface TenantView {
  tenant: string | null;
  metrics: TenantMetrics;
}

/**
 * The exposition text of some tenants' metrics, and (operator view) the deployment's own gateway
 * counts, which carry no tenant label.
 */
export function renderPrometheus(views: readonly TenantView[], deployment: GatewayCounters | null = null): string {
  const f = new Families();
  const byReason = (name: string, help: string, counts: Record<string, number>, base: Labels) => {
    f.family(name, "counter", help);
    for (const [reason, n] of Object.entries(counts)) f.sample(name, "counter", help, { ...base, reason }, n);
  };
  // Declared first so that every family appears, with its help, even before anything counts.
  f.family("amb_topics", "gauge", "Topics the tenant holds.");
  f.family("amb_messages_published_total", "counter", "Messages committed to a topic.");
  f.family("amb_messages_delivered_total", "counter", "Messages sent to subscribers and consumer-group members.");
  f.family("amb_publish_duration_seconds", "histogram", "Time from a publish reaching its topic to the publish being durable.");
  f.family("amb_delivery_duration_seconds", "histogram", "Time from a message's commit to its delivery.");
  f.family("amb_commit_duration_seconds", "histogram", "Time from a group commit's start to it being durable.");
  f.family("amb_commits_total", "counter", "Group commits (one SQLite transaction each).");
  f.family("amb_queue_depth", "gauge", "Consumer-group lag: messages of the topic the group has not settled (head minus ack floor).");
  f.family("amb_group_pending", "gauge", "Consumer-group jobs delivered and not settled yet.");
  f.family("amb_backpressure_activated_total", "counter", "Times delivery paused because a subscriber ran out of credit.");
  f.family("amb_delivery_failures_total", "counter", "Failed deliveries by reason: nack, timeout, member_gone, trimmed, socket_gone.");
  f.family("amb_dlq_messages_total", "counter", "Messages stored in a dead-letter topic by the topic's consumer groups.");
  f.family("amb_connections", "gauge", "Client WebSocket connections open on the topic.");
  f.family("amb_subscribers", "gauge", "Subscriptions on the topic.");
  f.family("amb_stored_messages", "gauge", "Messages stored in the topic's log.");
  f.family("amb_stored_bytes", "gauge", "Payload bytes stored in the topic's log.");
  f.family("amb_rate_limited_total", "counter", "Requests, frames and publishes refused by a rate limit, by reason.");
  f.family("amb_auth_failures_total", "counter", "Refused credentials by reason (forbidden: valid credential, action not allowed).");

  for (const { tenant, metrics } of views) {
    const base: Labels = tenant === null ? {} : { tenant };
    f.sample("amb_topics", "gauge", "", base, metrics.topics.length);
    const publish = emptyHistogram();
    const delivery = emptyHistogram();
    const commit = emptyHistogram();
    const rateLimited: Record<string, number> = { ...metrics.gateway.rateLimited };
    for (const t of metrics.topics) {
      const l = { ...base, topic: t.name };
      const c = t.counters;
      f.sample("amb_messages_published_total", "counter", "", l, c.published);
      f.sample("amb_messages_delivered_total", "counter", "", l, c.delivered);
      f.sample("amb_commits_total", "counter", "", l, c.commits);
      f.sample("amb_backpressure_activated_total", "counter", "", l, c.backpressure);
      f.sample("amb_dlq_messages_total", "counter", "", l, c.dlq);
      for (const [reason, n] of Object.entries(c.failures)) f.sample("amb_delivery_failures_total", "counter", "", { ...l, reason }, n ?? 0);
      for (const g of t.gauges.groups) {
        f.sample("amb_queue_depth", "gauge", "", { ...l, group: g.group }, g.lag);
        f.sample("amb_group_pending", "gauge", "", { ...l, group: g.group }, g.pending);
      }
      f.sample("amb_connections", "gauge", "", l, t.gauges.connections);
      f.sample("amb_subscribers", "gauge", "", l, t.subscribers);
      f.sample("amb_stored_messages", "gauge", "", l, t.messages);
      f.sample("amb_stored_bytes", "gauge", "", l, t.bytes);
      addHistogram(publish, c.publishDuration);
      addHistogram(delivery, c.deliveryDuration);
      addHistogram(commit, c.commitDuration);
      for (const [reason, n] of Object.entries(c.rateLimited)) rateLimited[reason] = (rateLimited[reason] ?? 0) + n;
    }
    f.histogram("amb_publish_duration_seconds", "", base, publish);
    f.histogram("amb_delivery_duration_seconds", "", base, delivery);
    f.histogram("amb_commit_duration_seconds", "", base, commit);
    byReason("amb_rate_limited_total", "", rateLimited, base);
    byReason("amb_auth_failures_total", "", metrics.gateway.authFailures, base);
  }
  if (deployment) {
    byReason("amb_rate_limited_total", "", deployment.rateLimited, {});
    byReason("amb_auth_failures_total", "", deployment.authFailures, {});
  }
  return f.text();
}
