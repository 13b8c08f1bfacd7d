// The freshrec operator's dashboard: plain DOM code against the JSON API, no build step and no libraries.
// Every value shown is set with textContent, never as markup, so data cannot inject script.
"use strict";

const KEY = "freshrec-admin-key";
const POLL_MS = 2000;
const HISTORY = 60; // points per sparkline: two minutes at one poll each 2 s

const $ = (id) => document.getElementById(id);
let pollTimer = null;
let previous = null;
const series = { events: [], requests: [], p99: [], lag: [] };

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText);
  return data;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
  if (error instanceof ApiError && error.status === 401) signOut();
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// ---- shell -------------------------------------------------------------------------------------------

function signIn(key) {
  sessionStorage.setItem(KEY, key);
  $("key-form").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  show("overview");
}

function signOut() {
  sessionStorage.removeItem(KEY);
  clearInterval(pollTimer);
  pollTimer = null;
  document.querySelectorAll(".page").forEach((p) => (p.hidden = true));
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("key-form").hidden = false;
}

function show(page) {
  document.querySelectorAll(".page").forEach((p) => (p.hidden = p.id !== `page-${page}`));
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.page === page));
  clearInterval(pollTimer);
  pollTimer = null;
  if (page === "overview") {
    pollOverview();
    pollTimer = setInterval(pollOverview, POLL_MS);
  } else if (page === "model") {
    loadModel();
  }
  if (page === "reports") loadReports();
  // the user page keeps the user shown; it reloads on demand (search, posted event)
}

// ---- overview ----------------------------------------------------------------------------------------

function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  return Number(value).toFixed(digits);
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}

function fmtAge(seconds) {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

// The q-quantile of a cumulative histogram's increase between two polls (upper bound of its bucket).
function quantile(now, before, total, q) {
  if (total <= 0) return null;
  for (let i = 0; i < now.length; i++) {
    const count = now[i].count - (before ? before[i].count : 0);
    if (count >= q * total) return now[i].le;
  }
  return Infinity;
}

function push(name, value) {
  const points = series[name];
  points.push(value === null || value === undefined || !Number.isFinite(value) ? 0 : value);
  if (points.length > HISTORY) points.shift();
  const svg = $(`sp-${name}`);
  if (!svg) return;
  const width = 200;
  const height = 32;
  const top = Math.max(...points, 1e-9);
  const step = width / (HISTORY - 1);
  const coords = points.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  let line = svg.querySelector("polyline");
  if (!line) {
    line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    svg.appendChild(line);
  }
  line.setAttribute("points", coords.join(" "));
}

async function pollOverview() {
  let s;
  try {
    s = await api("/v1/dashboard/summary");
  } catch (error) {
    showError(error);
    return;
  }
  showError(null);
  const p = previous;
  const dt = p ? s.time - p.time : 0;
  const requests = p ? s.requests - p.requests : s.requests;
  const eventsRate = p && dt > 0 ? (s.events - p.events) / dt : null;
  const requestsRate = p && dt > 0 ? requests / dt : null;
  const p50 = quantile(s.latency, p && p.latency, requests, 0.5);
  const p99 = quantile(s.latency, p && p.latency, requests, 0.99);
  const trainRate =
    p && dt > 0 && s.trained_through !== null && p.trained_through !== null
      ? Math.max(0, s.trained_through - p.trained_through) / dt
      : null;
  $("ov-events-rate").textContent = fmt(eventsRate);
  $("ov-requests-rate").textContent = fmt(requestsRate);
  $("ov-p50").textContent = p50 === Infinity ? "> 2.5 s" : fmtSeconds(p50);
  $("ov-p99").textContent = p99 === Infinity ? "> 2.5 s" : fmtSeconds(p99);
  $("ov-offset").textContent = s.last_offset;
  $("ov-users").textContent = s.users;
  $("ov-items").textContent = s.items;
  $("ov-model").textContent = s.model_version || "none";
  $("ov-model-age").textContent = s.model_created_at ? fmtAge(s.time - Date.parse(s.model_created_at) / 1000) : "-";
  $("ov-trainer").textContent = s.trainer ? s.trainer.state : "none here";
  $("ov-lag").textContent = s.trainer_lag === null ? "-" : s.trainer_lag;
  $("ov-train-rate").textContent = fmt(trainRate);
  if (!s.guard) {
    $("ov-guard").textContent = "no report";
    $("ov-guard-detail").textContent = "written by the online trainer after its first micro-batch";
  } else {
    const raised = Object.entries(s.guard.flags || {}).filter(([, on]) => on).map(([name]) => name);
    const guard = $("ov-guard");
    guard.textContent = raised.length ? raised.join(", ") : "no flags";
    guard.className = `figure ${raised.length ? "flag" : "ok"}`;
    const kept = Object.entries(s.guard.flagged_by_reason || {}).map(([r, n]) => `${r} ${n}`);
    $("ov-guard-detail").textContent = kept.length ? `users flagged: ${kept.join(", ")}` : "no users flagged";
  }
  $("ov-updated").textContent = `Last: ${new Date(s.time * 1000).toLocaleTimeString()}`;
  if (p) {
    push("events", eventsRate);
    push("requests", requestsRate);
    push("p99", p99 === Infinity ? 2.5 : p99);
    push("lag", s.trainer_lag);
  }
  previous = s;
}

// ---- model -------------------------------------------------------------------------------------------

function metric(meta, set) {
  const value = ((meta.metrics || {})[set] || {})["ndcg@10"];
  return value === undefined || value === null ? "" : Number(value).toFixed(4);
}

function offsets(version) {
  const o = version.offsets || {};
  if (o.from === undefined && o.to === undefined) return "";
  return `${JSON.stringify(o.from)} → ${JSON.stringify(o.to)}`;
}

async function loadModel() {
  let history;
  let info;
  try {
    [history, info] = await Promise.all([api("/v1/model/history"), api("/v1/model")]);
  } catch (error) {
    showError(error);
    return;
  }
  showError(null);
  renderModel(history, info.version);
}

function renderModel(history, serving) {
  $("model-current").textContent = history.current || "none";
  $("model-serving").textContent = serving || "none";
  $("model-pinned").textContent = history.pinned || "none";
  $("unpin").disabled = !history.pinned;
  const gateByVersion = {};
  for (const d of history.gate_decisions) if (d.candidate_version) gateByVersion[d.candidate_version] = d;
  const body = document.querySelector("#versions tbody");
  body.replaceChildren();
  for (const v of [...history.versions].reverse()) {
    const row = el("tr");
    row.dataset.version = v.version;
    const name = el("td", v.version);
    if (v.version === history.current) name.appendChild(el("span", "current", "badge"));
    if (v.version === history.pinned) name.appendChild(el("span", "pinned", "badge pinned"));
    const gate = gateByVersion[v.version];
    row.append(
      name,
      el("td", v.parent || ""),
      el("td", v.kind || ""),
      el("td", v.created_at || ""),
      el("td", offsets(v)),
      el("td", metric(v, "valid")),
      el("td", metric(v, "model")),
      el("td", gate ? (gate.accepted ? "accepted" : "rejected") : ""),
    );
    const actions = el("td");
    const pin = el("button", "Pin", "pin");
    pin.type = "button";
    pin.disabled = v.version === history.pinned;
    pin.addEventListener("click", () =>
      act(`Pin ${v.version}? It becomes current and the online trainer stops publishing.`, "/v1/model/pin", {
        version: v.version,
      }),
    );
    const back = el("button", "Make current", "rollback-to");
    back.type = "button";
    back.disabled = v.version === history.current;
    back.addEventListener("click", () =>
      act(`Roll back to ${v.version}? Serving switches to it.`, "/v1/model/rollback", { to: v.version }),
    );
    actions.append(pin, " ", back);
    row.appendChild(actions);
    body.appendChild(row);
  }
  const gateBody = document.querySelector("#gate tbody");
  gateBody.replaceChildren();
  for (const d of [...history.gate_decisions].reverse()) {
    const row = el("tr");
    row.append(
      el("td", d.at),
      el("td", d.candidate_version || ""),
      el("td", d.current_version || ""),
      el("td", d.accepted ? "accepted" : "rejected", d.accepted ? "ok" : "flag"),
      el("td", d.reason),
    );
    gateBody.appendChild(row);
  }
}

// Every change asks first; the API writes it to the audit log under the key's name.
async function act(question, path, body) {
  if (!window.confirm(question)) return;
  try {
    await api(path, { method: "POST", body });
  } catch (error) {
    showError(error);
    return;
  }
  await loadModel();
}

// ---- user inspector ----------------------------------------------------------------------------------

let inspected = null; // the user shown
let shownList = []; // item ids of the list shown, to mark what a posted event changed

function userPath(user, rest = "") {
  return `/v1/users/${encodeURIComponent(user)}${rest}`;
}

async function loadUser(user) {
  let state = null;
  let list;
  try {
    // a user without events has no state (404) but still gets a list (trending or onboarding)
    state = await api(userPath(user)).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    });
    list = await api(userPath(user, "/recommendations?k=10"));
  } catch (error) {
    showError(error);
    return;
  }
  showError(null);
  const changed = inspected === user && shownList.length > 0;
  const before = new Set(shownList);
  inspected = user;
  $("user-view").hidden = false;
  const sequence = state ? [...state.sequence].reverse() : [];
  $("user-seq-count").textContent = state ? `(${state.sequence.length} entries, newest first)` : "(no events yet)";
  const seqBody = document.querySelector("#user-sequence tbody");
  seqBody.replaceChildren();
  for (const entry of sequence) {
    const row = el("tr");
    row.append(el("td", new Date(entry.ts * 1000).toLocaleString()), el("td", entry.type), el("td", entry.item_id));
    seqBody.appendChild(row);
  }
  $("user-source").textContent = list.source;
  $("user-version").textContent = list.model_version || "-";
  const recBody = document.querySelector("#user-recs tbody");
  recBody.replaceChildren();
  list.items.forEach((item, i) => {
    const row = el("tr", undefined, changed && !before.has(item.item_id) ? "new" : "");
    row.dataset.item = item.item_id;
    row.append(
      el("td", i + 1),
      el("td", item.item_id),
      el("td", item.title || ""),
      el("td", Number(item.score).toFixed(3)),
      el("td", item.sources.join(", ")),
      el("td", item.reason),
    );
    recBody.appendChild(row);
  });
  const ids = list.items.map((item) => item.item_id);
  if (changed) {
    const entered = ids.filter((id) => !before.has(id)).length;
    const moved = ids.filter((id, i) => before.has(id) && shownList[i] !== id).length;
    $("user-change").textContent = `After the event: ${entered} new in the list, ${moved} moved (new ones highlighted).`;
  } else {
    $("user-change").textContent = "";
  }
  shownList = ids;
}

async function postEvent() {
  const event = { user_id: inspected, item_id: $("event-item").value.trim(), type: $("event-type").value };
  let ack;
  try {
    ack = await api("/v1/events", { method: "POST", body: event });
  } catch (error) {
    showError(error);
    return;
  }
  $("event-result").textContent = `Stored at offset ${ack.offsets.join(", ")}.`;
  await loadUser(inspected);
}

// ---- item inspector ----------------------------------------------------------------------------------

const ROW_MEANING = {
  learned: "learned from events",
  content: "mapped from its content (cold start)",
  none: "none: the model cannot recommend it",
};

async function loadItem(itemId) {
  let info;
  try {
    info = await api(`/v1/dashboard/items/${encodeURIComponent(itemId)}`);
  } catch (error) {
    showError(error);
    return;
  }
  showError(null);
  $("item-id").value = itemId;
  $("item-view").hidden = false;
  const item = info.item;
  $("item-title").textContent = item.title || item.item_id;
  const facts = [
    ["Item", item.item_id],
    ["Available", item.available ? "yes" : "no"],
    ["Categories", item.categories.join(", ")],
    ["Attributes", Object.entries(item.attributes).map(([k, v]) => `${k} ${v}`).join(", ")],
    [`Model row (${info.model_version || "no model"})`, ROW_MEANING[info.row]],
    ["Interactions (all time)", info.interactions],
    ["Exposures (this process)", info.exposures],
  ];
  const body = document.querySelector("#item-facts tbody");
  body.replaceChildren();
  for (const [name, value] of facts) {
    const row = el("tr");
    row.dataset.fact = name.split(" ")[0].toLowerCase();
    row.append(el("th", name), el("td", value));
    body.appendChild(row);
  }
  $("item-text").textContent = item.text || "";
  const similarBody = document.querySelector("#item-similar tbody");
  similarBody.replaceChildren();
  let similar;
  try {
    similar = await api(`/v1/items/${encodeURIComponent(itemId)}/similar?k=10`);
  } catch (error) {
    $("item-similar-note").textContent = error.message;
    return;
  }
  $("item-similar-note").textContent = "";
  similar.items.forEach((other, i) => {
    const row = el("tr");
    row.dataset.item = other.item_id;
    const open = el("button", other.item_id);
    open.type = "button";
    open.addEventListener("click", () => loadItem(other.item_id));
    const cell = el("td");
    cell.appendChild(open);
    row.append(el("td", i + 1), cell, el("td", other.title || ""), el("td", Number(other.score).toFixed(3)));
    similarBody.appendChild(row);
  });
}

// ---- reports -----------------------------------------------------------------------------------------

let imageUrl = null;

async function loadReports() {
  let reports;
  try {
    reports = await api("/v1/dashboard/reports");
  } catch (error) {
    showError(error);
    return;
  }
  showError(null);
  const body = document.querySelector("#reports tbody");
  body.replaceChildren();
  if (!reports.length) {
    const row = el("tr");
    const cell = el("td", "No reports: set serving.reports_dirs to folders of replay or benchmark outputs.");
    cell.colSpan = 3;
    row.appendChild(cell);
    body.appendChild(row);
  }
  for (const report of reports) {
    const row = el("tr");
    row.dataset.report = report.name;
    const open = el("button", report.name);
    open.type = "button";
    open.addEventListener("click", () => showReport(report));
    const cell = el("td");
    cell.appendChild(open);
    row.append(cell, el("td", new Date(report.modified * 1000).toLocaleString()), el("td", `${report.bytes} B`));
    body.appendChild(row);
  }
}

// Fetched with the key (an <img src> could not send it); images are shown through a blob URL.
async function showReport(report) {
  const path = `/v1/dashboard/reports/${report.folder}/${encodeURIComponent(report.name)}`;
  const response = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  if (!response.ok) {
    showError(new ApiError(response.status, (await response.json().catch(() => ({}))).detail || ""));
    return;
  }
  showError(null);
  $("report-name").textContent = report.name;
  const text = $("report-text");
  const image = $("report-image");
  if (imageUrl) URL.revokeObjectURL(imageUrl);
  imageUrl = null;
  if (report.name.endsWith(".png")) {
    imageUrl = URL.createObjectURL(await response.blob());
    image.src = imageUrl;
    image.hidden = false;
    text.hidden = true;
  } else {
    const raw = await response.text();
    text.textContent = report.name.endsWith(".json") ? JSON.stringify(JSON.parse(raw), null, 2) : raw;
    text.hidden = false;
    image.hidden = true;
  }
}

// ---- start -------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => show(b.dataset.page)));
  $("unpin").addEventListener("click", () =>
    act("Unpin? The online trainer may publish new versions again.", "/v1/model/unpin", undefined),
  );
  $("rollback").addEventListener("click", () =>
    act("Roll back to the current version's parent?", "/v1/model/rollback", undefined),
  );
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    shownList = [];
    $("event-result").textContent = "";
    loadUser($("user-id").value.trim());
  });
  $("event-form").addEventListener("submit", (event) => {
    event.preventDefault();
    postEvent();
  });
  $("item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadItem($("item-id").value.trim());
  });
  if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
});
