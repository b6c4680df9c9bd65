// The dashboard page: reads /api/stream (server-sent events, same bodies as /api/...) and
// draws them. No framework; uPlot (vendored) draws the per-minute charts. Data from the API is
// only ever put on the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let chart = null;
let stream = null;

function yuan(fen) {
  // Exact: integer fen → "¥1,234.56" without floating point.
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  const whole = Math.floor(abs / 100).toLocaleString("en-US");
  return `${sign}¥${whole}.${String(abs % 100).padStart(2, "0")}`;
}

function show(id, on) { $(id).hidden = !on; }

function fail(message) {
  $("error").textContent = message;
  show("error", true);
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function connect(query, render) {
  if (stream) stream.close();
  const status = $("connection");
  stream = new EventSource(`/api/stream?${query}`);
  stream.addEventListener("view", (e) => {
    status.textContent = "● live";
    status.classList.add("on");
    show("error", false);
    render(JSON.parse(e.data));
  });
  stream.onerror = async () => {
    status.textContent = "○ reconnecting";
    status.classList.remove("on");
    // An unknown id or a bad date answers 4xx: say so instead of retrying forever.
    const path = query.startsWith("live=") ? `/api/live/${encodeURIComponent(params.get("live"))}`
      : query.startsWith("creator=") ? `/api/creators/${encodeURIComponent(params.get("creator"))}?date=${params.get("date") || ""}`
      : query.startsWith("merchant=") ? `/api/merchants/${encodeURIComponent(params.get("merchant"))}?date=${params.get("date") || ""}`
      : null;
    if (!path) return;
    const resp = await fetch(path.replace(/\?date=$/, ""));
    if (resp.status >= 400 && resp.status < 500) {
      stream.close();
      const body = await resp.json().catch(() => ({}));
      fail(body.message || `HTTP ${resp.status}`);
    }
  };
}

// --- figures (live session, creator day, merchant day) ------------------------------------------

function minutesSeries(perMinute, from, to, field) {
  // Dense series from sparse per_minute[]: one point per minute, zeros where nothing happened.
  const byTime = new Map(perMinute.map((m) => [Date.parse(m.minute) / 1000, m[field]]));
  const xs = [], ys = [];
  for (let t = from; t <= to; t += 60) { xs.push(t); ys.push(byTime.get(t) || 0); }
  return [xs, ys];
}

function drawChart(perMinute, field, label, range) {
  const box = $("chart");
  const [from, to] = range(perMinute);
  const data = minutesSeries(perMinute, from, to, field);
  const width = Math.max(280, box.clientWidth || 600);
  const height = Math.max(200, Math.min(420, Math.round(width * 0.45)));
  if (chart && chart.__field === field && chart.width === width) {
    chart.setData(data);
    return;
  }
  if (chart) chart.destroy();
  chart = new uPlot({
    width, height,
    // Minutes are Asia/Shanghai's, wherever the viewer is; the y axis starts at 0.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Asia/Shanghai"),
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{ stroke: "#8a97b1", grid: { stroke: "#24314d" } },
           { stroke: "#8a97b1", grid: { stroke: "#24314d" } }],
    series: [{}, { label, stroke: "#ffb547", fill: "rgba(255,181,71,.25)",
                   paths: uPlot.paths.bars({ size: [0.8, 40] }),
                   value: field === "gmv_fen" ? (u, v) => (v == null ? "–" : yuan(v)) : undefined }],
  }, data, box);
  chart.__field = field;
}

function renderFigures(body) {
  $("kpi-gmv").textContent = yuan(body.gmv_fen);
  $("kpi-orders").textContent = String(body.orders);
  $("kpi-refunds").textContent = yuan(body.refunds_fen);
  $("kpi-net").textContent = yuan(body.net_fen);
  $("kpi-accrued").textContent = yuan(body.commission_accrued_fen);
  $("kpi-settled").textContent = yuan(body.commission_settled_fen);
  for (const id of ["kpi-gmv", "kpi-orders", "kpi-refunds", "kpi-net", "kpi-accrued", "kpi-settled"]) {
    $(id).dataset.updated = String(Date.now());
  }
}

function renderLive(body) {
  show("figures", true);
  show("live-side", true);
  $("title").textContent = body.title ? `${body.title}` : `Live session ${body.session_id}`;
  $("subtitle").textContent = `session ${body.session_id} · creator ${body.creator_id || "?"} · ${body.status}`;
  renderFigures(body);
  $("explaining").textContent = body.explaining ? body.explaining.product_id : "–";
  const rows = $("top-products").querySelector("tbody");
  rows.replaceChildren(...body.top_products.map((p, i) => {
    const tr = el("tr");
    tr.append(el("td", String(i + 1)), el("td", p.product_id), el("td", yuan(p.gmv_fen)),
              el("td", String(p.orders)), el("td", String(p.units)));
    return tr;
  }));
  $("chart-title").textContent = "Orders per minute";
  drawChart(body.per_minute, "orders", "orders", (pm) => {
    const now = Math.floor(Date.now() / 60000) * 60;
    const last = pm.length ? Date.parse(pm[pm.length - 1].minute) / 1000 : now;
    const to = Math.max(last, Math.min(now, last + 3600));
    const first = pm.length ? Date.parse(pm[0].minute) / 1000 : to - 1800;
    return [Math.max(first, to - 3 * 3600), to];
  });
}

function renderDay(kind) {
  return (body) => {
    show("figures", true);
    show("live-side", false);
    const id = body[`${kind}_id`];
    $("title").textContent = `${kind === "creator" ? "Creator" : "Merchant"} ${id}`;
    $("subtitle").textContent = `${body.date} (Asia/Shanghai)`;
    renderFigures(body);
    $("chart-title").textContent = "GMV per minute";
    drawChart(body.per_minute, "gmv_fen", "GMV", () => {
      const start = Date.parse(`${body.date}T00:00:00+08:00`) / 1000;
      return [start, start + 86400 - 60];
    });
  };
}

// --- sessions and policies --------------------------------------------------------------------------

async function renderSessions() {
  show("sessions", true);
  const resp = await fetch("/api/live");
  const body = await resp.json();
  const list = $("session-list");
  list.replaceChildren(...body.sessions.map((s) => {
    const a = el("a");
    a.href = `?live=${encodeURIComponent(s.session_id)}`;
    a.append(el("strong", s.title || s.session_id), el("br"),
             el("span", `${s.status || "sales"} · ${yuan(s.gmv_fen)}`, "muted"));
    const li = el("li");
    li.append(a);
    return li;
  }));
  show("no-sessions", body.sessions.length === 0);
}

const STEPS = [["announced", "announced"], ["in_force", "in force"], ["reported", "reported"], ["completed", "completed"]];

function renderPolicies(body) {
  show("policies", true);
  const list = $("policy-list");
  list.replaceChildren(...body.policies.map((p) => {
    const card = el("article", undefined, "policy");
    card.dataset.policy = p.policy_id;
    card.append(el("h3", `${p.title || p.policy_id}`), el("p", `${p.policy_id} · ${p.stage}${p.phase ? " · " + p.phase : ""}`, "muted"));
    const allReported = p.enforcement.length > 0 && p.enforcement.every((e) => e.reported);
    const reached = { announced: true, in_force: ["in_force", "completed"].includes(p.stage),
                      reported: allReported || p.stage === "completed", completed: p.stage === "completed" };
    const steps = el("ol", undefined, "steps");
    for (const [key, label] of STEPS) steps.append(el("li", label, reached[key] ? "done" : ""));
    if (p.stage === "lifted") steps.append(el("li", "lifted", "lifted"));
    if (p.stage === "rejected") steps.append(el("li", "rejected", "lifted"));
    card.append(steps);
    const table = el("table");
    const head = el("tr");
    head.append(el("th", "service"), el("th", "reported"), el("th", "phase"), el("th", "affected"));
    table.append(head);
    for (const e of p.enforcement) {
      const tr = el("tr");
      tr.dataset.service = e.service;
      tr.append(el("td", e.service), el("td", e.reported ? "✓" : "waiting"),
                el("td", e.phase || "–"), el("td", e.affected == null ? "–" : String(e.affected)));
      table.append(tr);
    }
    card.append(table);
    return card;
  }));
  show("no-policies", body.policies.length === 0);
}

// --- routing ------------------------------------------------------------------------------------------

function pickForm(kind) {
  show("pick", true);
  $("pick-label").textContent = `${kind} id`;
  $("pick").onsubmit = (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ [kind]: $("pick-id").value });
    if (kind !== "live" && $("pick-date").value) q.set("date", $("pick-date").value);
    location.search = q.toString();
  };
  show("pick-date-label", kind !== "live");
}

function main() {
  const view = params.has("live") ? "live" : params.has("creator") ? "creator"
    : params.has("merchant") ? "merchant" : params.get("view") || "live";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "policies") {
    connect("policies", renderPolicies);
    return;
  }
  pickForm(view);
  const id = params.get(view);
  if (!id) {
    if (view === "live") renderSessions().catch((e) => fail(String(e)));
    $("connection").textContent = "";
    return;
  }
  $("pick-id").value = id;
  if (params.get("date")) $("pick-date").value = params.get("date");
  const q = new URLSearchParams({ [view]: id });
  if (view !== "live" && params.get("date")) q.set("date", params.get("date"));
  connect(q.toString(), view === "live" ? renderLive : renderDay(view));
}

window.addEventListener("resize", () => { if (chart) { chart.__field = null; } });
main();
