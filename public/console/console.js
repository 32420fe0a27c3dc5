// Dovetail console (docs/observability.md, "Console"): one page, no framework, no build step.
// It reads GET /metrics?format=json every few seconds (the figures Prometheus scrapes), the agent
// registry, and tails a topic over the WebSocket protocol (docs/protocol.md). The token stays in
// this tab's sessionStorage and is sent only to this bus.

const REFRESH_MS = 2000;
/** Rate history kept for the chart: five minutes of refreshes. */
const HISTORY = 150;
/** Messages the tail asks for at a time (flow control: docs/protocol.md, `credit`). */
const TAIL_CREDIT = 100;
/** Messages the tail shows. */
const TAIL_KEEP = 200;

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("dovetail-token"), timer: null, before: null, history: [], tail: null };

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...init.headers, Authorization: `Bearer ${state.token}` } });
  const body = res.headers.get("Content-Type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body?.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  const td = document.createElement("td");
  td.append(b);
  return td;
}

const enc = encodeURIComponent;
const rate = (now, before, seconds) => (before === undefined || seconds <= 0 ? "-" : (Math.max(0, now - before) / seconds).toFixed(1));

async function refresh() {
  let metrics;
  try {
    metrics = await api("/metrics?format=json");
  } catch (error) {
    $("status").textContent = `error: ${error.message}`;
    return;
  }
  const now = Date.now();
  const before = state.before;
  const seconds = before ? (now - before.at) / 1000 : 0;
  const prior = new Map((before?.metrics.topics ?? []).map((t) => [t.name, t]));
  let pub = 0;
  let del = 0;
  const topics = $("topics").tBodies[0];
  const groups = $("groups").tBodies[0];
  topics.replaceChildren();
  groups.replaceChildren();
  for (const t of metrics.topics) {
    const p = prior.get(t.name);
    if (p && seconds > 0) {
      pub += Math.max(0, t.counters.published - p.counters.published) / seconds;
      del += Math.max(0, t.counters.delivered - p.counters.delivered) / seconds;
    }
    const tr = document.createElement("tr");
    tr.dataset.topic = t.name;
    tr.append(
      cell(t.name),
      cell(rate(t.counters.published, p?.counters.published, seconds), "num"),
      cell(rate(t.counters.delivered, p?.counters.delivered, seconds), "num"),
      cell(t.head, "num"),
      cell(t.messages, "num"),
      cell(t.bytes, "num"),
      cell(t.subscribers, "num"),
      cell(t.gauges.connections, "num"),
      button("Tail", () => startTail(t.name)),
    );
    topics.append(tr);
    for (const g of t.gauges.groups) {
      const row = document.createElement("tr");
      row.dataset.topic = t.name;
      row.dataset.group = g.group;
      row.append(
        cell(t.name),
        cell(g.group),
        cell(g.lag, "num lag"),
        cell(g.pending, "num"),
        cell(t.counters.dlq, "num"),
        button("Replay dead letters", () => groupAction(t.name, g.group, "replay")),
        button("Purge dead letters", () => groupAction(t.name, g.group, "purge")),
      );
      groups.append(row);
    }
  }
  if (before) {
    state.history.push({ pub, del });
    if (state.history.length > HISTORY) state.history.shift();
    drawChart();
  }
  state.before = { at: now, metrics };
  $("status").textContent = `${metrics.topics.length} topics · ${new Date(now).toLocaleTimeString()}`;
  refreshAgents();
}

async function refreshAgents() {
  const body = $("agents").tBodies[0];
  try {
    const { agents } = await api("/v1/agents?limit=100");
    body.replaceChildren(
      ...agents.map((a) => {
        const tr = document.createElement("tr");
        tr.append(cell(a.id), cell(a.name ?? ""), cell((a.capabilities ?? []).join(", ")));
        return tr;
      }),
    );
  } catch (error) {
    const tr = document.createElement("tr");
    tr.append(cell(`not shown: ${error.message}`));
    body.replaceChildren(tr);
  }
}

async function groupAction(topic, group, action) {
  try {
    if (action === "replay") {
      const r = await api(`/v1/topics/${enc(topic)}/groups/${enc(group)}/replay`, { method: "POST", body: "{}" });
      $("status").textContent = `replayed ${r.replayed} dead letters of ${group}`;
    } else {
      const info = await api(`/v1/topics/${enc(topic)}/groups/${enc(group)}`);
      if (!confirm(`Delete the dead-letter topic ${info.settings.deadLetterTopic} and every message in it?`)) return;
      await api(`/v1/topics/${enc(info.settings.deadLetterTopic)}`, { method: "DELETE" });
      $("status").textContent = `purged ${info.settings.deadLetterTopic}`;
    }
  } catch (error) {
    $("status").textContent = `${action} failed: ${error.message}`;
  }
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...state.history.map((h) => Math.max(h.pub, h.del)));
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px system-ui";
  ctx.fillText(`${max.toFixed(0)}/s`, 4, 12);
  for (const [key, color] of [
    ["pub", "#2f6fde"],
    ["del", "#1a9e5b"],
  ]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    state.history.forEach((h, i) => {
      const x = width - (state.history.length - 1 - i) * (width / HISTORY);
      const y = height - 4 - (h[key] / max) * (height - 20);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

// ---- Live tail: a subscription over the WebSocket protocol, paced by credit ----------------

function startTail(topic) {
  state.tail?.ws.close();
  $("tail").replaceChildren();
  $("tail-name").value = topic;
  $("tail-topic").textContent = `· ${topic}`;
  const url = `${location.origin.replace(/^http/, "ws")}/v1/topics/${enc(topic)}/ws?token=${enc(state.token)}`;
  const tail = { ws: new WebSocket(url), paused: false, owed: 0, held: [] };
  state.tail = tail;
  $("tail-pause").disabled = false;
  $("tail-pause").textContent = "Pause";
  tail.ws.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "welcome") tail.ws.send(JSON.stringify({ type: "subscribe", id: 1, from: "latest", credit: TAIL_CREDIT }));
    else if (frame.type === "messages") {
      // Paused: kept aside and the credit owed, so the topic stops sending once it is spent.
      if (tail.paused) {
        tail.held.push(...frame.messages);
        tail.owed += frame.messages.length;
        return;
      }
      for (const m of frame.messages) showMessage(m);
      tail.ws.send(JSON.stringify({ type: "credit", messages: frame.messages.length }));
    } else if (frame.type === "error") showNote(`error: ${frame.code}: ${frame.message}`);
  });
  tail.ws.addEventListener("close", (e) => {
    if (state.tail === tail) showNote(`closed (${e.code})`);
  });
}

function showMessage(m) {
  const li = document.createElement("li");
  li.value = m.offset;
  li.className = "message";
  li.dataset.message = JSON.stringify(m);
  renderMessage(li);
  const list = $("tail");
  list.prepend(li);
  while (list.children.length > TAIL_KEEP) list.lastElementChild.remove();
}

function renderMessage(li) {
  const m = JSON.parse(li.dataset.message);
  if ($("tail-json").checked) {
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(m, null, 2);
    li.replaceChildren(pre);
  } else {
    li.textContent = `${new Date(m.time).toLocaleTimeString()}  ${m.key ? `[${m.key}] ` : ""}${"data" in m ? JSON.stringify(m.data) : `${m.bytes.length} base64 chars`}`;
  }
}

function showNote(text) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = text;
  $("tail").prepend(li);
}

// ---- Wiring ----------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  try {
    await api("/metrics?format=json");
  } catch (error) {
    $("sign-in-error").textContent = `Not signed in: ${error.message}`;
    state.token = null;
    return;
  }
  sessionStorage.setItem("dovetail-token", token);
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  await refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

$("sign-in").addEventListener("submit", (e) => {
  e.preventDefault();
  void signIn($("token").value.trim());
});
$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("dovetail-token");
  location.reload();
});
$("tail-form").addEventListener("submit", (e) => {
  e.preventDefault();
  startTail($("tail-name").value.trim());
});
$("tail-pause").addEventListener("click", () => {
  const tail = state.tail;
  if (!tail) return;
  tail.paused = !tail.paused;
  $("tail-pause").textContent = tail.paused ? "Resume" : "Pause";
  if (tail.paused) return;
  for (const m of tail.held.splice(0)) showMessage(m);
  if (tail.owed > 0) tail.ws.send(JSON.stringify({ type: "credit", messages: tail.owed }));
  tail.owed = 0;
});
$("tail-json").addEventListener("change", () => {
  for (const li of $("tail").querySelectorAll("li.message")) renderMessage(li);
});
$("publish-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const topic = $("publish-topic").value.trim();
  try {
    const data = JSON.parse($("publish-data").value);
    const r = await api(`/v1/topics/${enc(topic)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ data }),
    });
    $("publish-result").textContent = `stored at offset ${r.offset}`;
  } catch (error) {
    $("publish-result").textContent = `not published: ${error.message}`;
  }
});

if (state.token) void signIn(state.token);
