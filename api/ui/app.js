// The cluster page: plain DOM, no build step, no dependencies.
//
// State comes from the agent's public API (/v1/health, /v1/members, /v1/projects); changes
// arrive as Server-Sent Events (/v1/events/stream) and each one schedules a refresh, so the
// map follows the cluster without a reload. With --api-token the page asks for the token once,
// keeps it in sessionStorage, sends it as `Authorization: Bearer` on fetch and as `?token=` on
// the EventSource (which cannot set a header). Everything from the API is put in the page as
// text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "shoal_token";
const FEED_MAX = 200;
const REFRESH_DEBOUNCE_MS = 250;
const REFRESH_EVERY_MS = 5000; // capacity changes are not events: look now and then anyway

const state = { members: [], projects: [], health: null, lastId: null, source: null };
let refreshTimer = null;
let needToken = false;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

class Unauthorized extends Error {}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized(path);
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "style") Object.assign(node.style, v); // CSSOM: allowed by the page's CSP
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
  }
  return node;
}

function askToken(message) {
  needToken = true;
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token-error").textContent = message || "";
  document.getElementById("token-input").focus();
  setLive(false, "needs token");
}

function guarded(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      if (err instanceof Unauthorized) {
        askToken(token() ? "that token was refused" : "");
      } else {
        console.warn(err);
        setLive(false, "agent unreachable");
      }
      return undefined;
    }
  };
}

// --- the map -------------------------------------------------------------------------------
function bar(label, used, total, unit) {
  const pct = total > 0 ? Math.min(100, Math.round((100 * used) / total)) : 0;
  const level = pct >= 90 ? "high" : pct >= 70 ? "mid" : "low";
  return el("div", { class: "bar", title: `${label}: ${used} of ${total} ${unit} used` },
    el("span", { class: "bar-label" }, label),
    el("span", { class: "bar-track" }, el("span", { class: "bar-fill " + level, style: { width: pct + "%" } })),
    el("span", { class: "bar-text" }, `${used}/${total} ${unit}`));
}

function servoChip(s) {
  const title = `${s.id}\nproject ${s.project}, generation ${s.generation}, slot ${s.slot}\n` +
    `state ${s.state}, restarts ${s.restarts}` + (s.fake ? "\n(fake runtime: a record, no process)" : "");
  return el("a", {
    class: `servo state-${s.state}`, href: "#project=" + encodeURIComponent(s.project),
    "data-servo": s.id, "data-state": s.state, "data-project": s.project, title,
  }, `${s.project}·${s.slot}`);
}

function hostCard(m, servos) {
  const cap = m.capacity || {};
  const memUsed = (cap.memory_total_mb || 0) - (cap.memory_free_mb || 0);
  const cpuUsed = (cap.millicpus_total || 0) - (cap.millicpus_free || 0);
  const chips = el("div", { class: "servos" }, ...servos.map(servoChip));
  if (!servos.length) chips.append(el("span", { class: "muted" }, "no servos"));
  return el("div", { class: `host status-${m.status}`, "data-node": m.name, "data-status": m.status },
    el("div", { class: "host-head" },
      el("span", { class: "host-name" }, m.name),
      el("span", { class: `badge status-${m.status}`, "data-role": "status" }, m.status)),
    el("div", { class: "muted small" }, `${m.addr || ""} · ${m.runtime || ""}`),
    bar("mem", memUsed, cap.memory_total_mb || 0, "MiB"),
    bar("cpu", (cpuUsed / 1000).toFixed(1), ((cap.millicpus_total || 0) / 1000).toFixed(1), "CPU"),
    chips);
}

function renderMap() {
  const byNode = new Map();
  for (const p of state.projects) {
    for (const s of p.servos) {
      const list = byNode.get(s.node) || [];
      list.push(Object.assign({ project: p.name }, s));
      byNode.set(s.node, list);
    }
  }
  const regions = new Map();
  for (const m of state.members) {
    const zones = regions.get(m.region) || new Map();
    const hosts = zones.get(m.zone) || [];
    hosts.push(m);
    zones.set(m.zone, hosts);
    regions.set(m.region, zones);
  }
  const map = document.getElementById("map");
  const out = [];
  for (const region of [...regions.keys()].sort()) {
    const zones = regions.get(region);
    const zoneEls = [...zones.keys()].sort().map((zone) =>
      el("div", { class: "zone", "data-zone": zone },
        el("h4", {}, zone),
        el("div", { class: "hosts" }, ...zones.get(zone).map((m) =>
          hostCard(m, (byNode.get(m.name) || []).sort((a, b) => a.id.localeCompare(b.id)))))));
    const hosts = [...zones.values()].flat();
    const alive = hosts.filter((m) => m.status === "alive").length;
    out.push(el("div", { class: "region", "data-region": region },
      el("h3", {}, region, el("span", { class: "muted" }, ` ${alive}/${hosts.length} alive`)),
      el("div", { class: "zones" }, ...zoneEls)));
  }
  if (!out.length) out.push(el("p", { class: "muted" }, "no members yet"));
  map.replaceChildren(...out);
}

// --- projects ------------------------------------------------------------------------------
function rolloutCell(p) {
  const r = p.rollout;
  if (!r) return el("span", { class: "muted" }, "—");
  const pct = r.replicas > 0 ? Math.round((100 * r.healthy) / r.replicas) : 0;
  const label = `gen ${r.generation} ${r.state.replace("_", " ")}`;
  const cell = el("div", { class: `rollout rollout-${r.state}`, "data-rollout": r.state, title: r.reason || "" },
    el("span", {}, label));
  if (r.state === "in_progress") {
    cell.append(el("span", { class: "bar-track" }, el("span", { class: "bar-fill low", style: { width: pct + "%" } })),
      el("span", { class: "small" }, `${r.updated} updated, ${r.healthy}/${r.replicas} healthy`));
  }
  return cell;
}

function renderProjects() {
  const body = document.querySelector("#projects tbody");
  const rows = state.projects.map((p) => {
    const running = p.servos.filter((s) => s.state === "running" && s.node_status === "alive").length;
    const want = p.spec.stopped ? 0 : p.spec.replicas;
    return el("tr", { "data-project": p.name },
      el("td", {}, el("a", { href: "#project=" + encodeURIComponent(p.name) }, p.name)),
      el("td", {}, p.generation),
      el("td", { class: running < want ? "warn" : "" }, `${running}/${want}` + (p.spec.stopped ? " stopped" : "")),
      el("td", {}, rolloutCell(p)));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "no projects")));
  body.replaceChildren(...rows);
}

// --- a project's panel: its servos and their recent log lines ------------------------------
function panelProject() {
  const m = /^#project=(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

const renderPanel = guarded(async (withLogs) => {
  const name = panelProject();
  const panel = document.getElementById("project-panel");
  if (!name) { panel.hidden = true; return; }
  const p = state.projects.find((x) => x.name === name);
  panel.hidden = false;
  panel.setAttribute("data-project", name);
  document.getElementById("panel-title").textContent = name;
  if (!p) { document.getElementById("panel-summary").textContent = "no such project"; return; }
  const r = p.rollout ? `, rollout of gen ${p.rollout.generation} ${p.rollout.state}` : "";
  document.getElementById("panel-summary").textContent =
    `${p.spec.image}, ${p.spec.replicas} replica(s), generation ${p.generation}${r}`;
  document.querySelector("#panel-servos tbody").replaceChildren(...p.servos.map((s) =>
    el("tr", { "data-servo": s.id },
      el("td", {}, s.id), el("td", {}, `${s.node} (${s.node_status})`),
      el("td", {}, el("span", { class: `servo state-${s.state}` }, s.state)),
      el("td", {}, s.generation), el("td", {}, s.restarts),
      el("td", {}, s.last_exit ? `${s.last_exit.reason} (${s.last_exit.code})` : "—"))));
  if (!withLogs) return;
  const logs = await api(`/v1/projects/${encodeURIComponent(name)}/logs?tail=20`);
  document.getElementById("panel-logs").replaceChildren(...logs.servos.map((s) =>
    el("div", { class: "log", "data-servo": s.servo },
      el("div", { class: "small" }, `${s.servo} on ${s.node} (${s.state})`),
      el("pre", {}, s.logs || "(no output)"))));
});

// --- events --------------------------------------------------------------------------------
function feedItem(e) {
  const time = (e.at || "").slice(11, 19);
  const area = e.kind.split(".")[0];
  return el("li", { class: `event ev-${e.kind.replace(".", "-")} area-${area}`, "data-kind": e.kind, "data-id": e.id },
    el("time", { dateTime: e.at }, time), el("span", { class: "kind" }, e.kind), el("span", { class: "text" }, e.text));
}

function addEvents(events) {
  const feed = document.getElementById("feed");
  for (const e of events) {
    if (state.lastId !== null && e.id <= state.lastId) continue;
    state.lastId = e.id;
    feed.prepend(feedItem(e));
  }
  while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
}

function setLive(on, text) {
  const live = document.getElementById("live");
  live.className = "live " + (on ? "on" : "off");
  live.textContent = text;
}

function openStream() {
  if (state.source) state.source.close();
  const params = new URLSearchParams();
  params.set("since", state.lastId === null ? 0 : state.lastId); // nothing missed since the fetch
  if (token()) params.set("token", token());
  const source = new EventSource("/v1/events/stream?" + params.toString());
  let away = null; // a stream the server cut is reopened within a second: no flicker for that
  source.onopen = () => { clearTimeout(away); setLive(true, "live"); };
  source.onmessage = (msg) => {
    const e = JSON.parse(msg.data);
    addEvents([e]);
    scheduleRefresh(e.project === panelProject());
  };
  // the browser reconnects by itself (with Last-Event-ID); a refused token shows on the next fetch
  source.onerror = () => {
    clearTimeout(away);
    away = setTimeout(() => setLive(false, "reconnecting"), 3000);
    scheduleRefresh(false);
  };
  state.source = source;
}

// --- refresh -------------------------------------------------------------------------------
const refresh = guarded(async (withLogs) => {
  const [health, members, projects] = await Promise.all([
    api("/v1/health"), api("/v1/members"), api("/v1/projects")]);
  Object.assign(state, { health, members, projects });
  const alive = members.filter((m) => m.status === "alive").length;
  document.getElementById("agent").textContent = `via ${health.name} (${health.region}, ${health.runtime} runtime)`;
  document.getElementById("counts").textContent =
    `${alive}/${members.length} members alive · ${projects.length} project(s)`;
  renderMap();
  renderProjects();
  await renderPanel(withLogs);
});

function scheduleRefresh(withLogs) {
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(withLogs); }, REFRESH_DEBOUNCE_MS);
}

const start = guarded(async () => {
  const recent = await api("/v1/events?limit=100"); // needs the token when the agent has one
  needToken = false;
  document.getElementById("token-form").hidden = true;
  addEvents(recent);
  await refresh(true);
  openStream();
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    start();
  });
  document.getElementById("panel-close").addEventListener("click", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", location.pathname);
    renderPanel(false);
  });
  window.addEventListener("hashchange", () => renderPanel(true));
  setInterval(() => { if (!needToken && !refreshTimer) refresh(false); }, REFRESH_EVERY_MS);
  start();
});
