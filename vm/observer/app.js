/*
 * app.js - the observer's page: polls this node's JSON API every second
 * and draws it (docs/observer.md, "The page").
 *
 * No library: the charts are one small function over <canvas> (drawChart),
 * the rest is the DOM. Every string from the VM (names, ids, node names)
 * reaches the page through textContent or setAttribute, never through
 * innerHTML, so a process named "<script>" is shown as that text.
 *
 * What the page drew is left in the DOM for tests and curious readers:
 * data-samples on each canvas, data-rows on the table, data-polls on <body>.
 */
"use strict";

const KEEP = 300;          /* samples kept: 5 minutes at one a second */
const MAX_ROWS = 500;      /* table rows drawn; the rest are a filter away */
const POLL_MS = 1000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

const state = {
  samples: [],             /* the stats samples, oldest first */
  lastT: -1,               /* t of the newest sample: the next poll's since */
  schedulers: 0,
  killAllowed: false,
  procs: [],
  byPid: new Map(),
  sortKey: "reds_per_s",
  sortDesc: true,
  filter: "",
  selected: 0,             /* the pid whose detail is open, 0 for none */
  selectName: null,        /* #name=X: open X's detail once the table names it */
  collapsed: new Set(),    /* tree nodes folded, by their path of ids */
  seen: new Set(),         /* supervisors drawn before (folded or not by the reader since) */
  intervalMs: 1000,
  polls: 0,
};

/* ---- small helpers ------------------------------------------------------- */

const $ = (id) => document.getElementById(id);

/* An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    e.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

/* Integers past 2^53 (references) keep their digits, as strings. */
function parseJSON(text) {
  return JSON.parse(text, (k, v, ctx) =>
    typeof v === "number" && !Number.isSafeInteger(v) && Number.isInteger(v) && ctx && ctx.source
      ? ctx.source : v);
}

/* A failure of the node or of the way to it, not of the page. */
class NetError extends Error {}

/* fetch, and the answer's JSON: {status, ok, body}; NetError if none came. */
async function request(path, opts) {
  let r, text, body;
  try {
    r = await fetch(path, Object.assign({ cache: "no-store" }, opts));
    text = await r.text();
  } catch (e) {
    throw new NetError(path + ": " + e.message);
  }
  try {
    body = parseJSON(text);
  } catch (e) {
    throw new NetError(path + ": " + r.status + ", not JSON");
  }
  return { status: r.status, ok: r.ok, body };
}

async function getJSON(path) {
  const r = await request(path);
  if (!r.ok) throw new NetError(path + ": " + r.status + " " + (r.body && r.body.error || ""));
  return r.body;
}

/* The page's own bugs are shown (index.html's pageError); the node's
 * silence is the badge's business. */
function report(e) {
  if (!(e instanceof NetError)) window.pageError("page error: " + (e && e.stack || e));
}

/* <0.index.serial>, as krill's reports and Erlang print a pid. */
function fmtPid(p) {
  if (typeof p !== "number" || p <= 0) return "-";
  const index = p % 2 ** 26, serial = Math.floor(p / 2 ** 26) % 2 ** 24;
  const node = Math.floor(p / 2 ** 50);
  return "<" + node + "." + index + "." + serial + ">";
}

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

function fmtInt(n) { return typeof n === "number" ? intFmt.format(n) : "-"; }

function fmtNum(n) {
  if (typeof n !== "number") return "-";
  const a = Math.abs(n);
  if (a >= 1e9) return decFmt.format(n / 1e9) + "G";
  if (a >= 1e6) return decFmt.format(n / 1e6) + "M";
  if (a >= 1e4) return decFmt.format(n / 1e3) + "k";
  return decFmt.format(n);
}

function fmtBytes(n) {
  if (typeof n !== "number") return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? decFmt.format(n) : intFmt.format(n)) + " " + units[i];
}

const fmtPct = (v) => Math.round(v * 100) + "%";

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
}

/* ---- the chart ------------------------------------------------------------ */

/* The top of an axis of four steps over values up to v: each step a
 * round number (1, 2, 2.5 or 5 times a power of ten, or of 1024 for bytes,
 * whole for counts). */
function axisTop(v, bytes) {
  if (!(v > 0)) return 4;
  const unit = bytes ? 1024 ** Math.max(0, Math.floor(Math.log(v) / Math.log(1024))) : 1;
  const raw = v / unit / 4, p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5]) {
    if (m === 2.5 && p < 10 && !bytes) continue; /* counts: whole steps */
    if (m * p >= raw) { step = m * p; break; }
  }
  if (!bytes && v >= 1 && step < 1) step = 1;
  return step * 4 * unit;
}

/*
 * Draw lines of values over time on a canvas. times: ms since the VM
 * started, oldest first; series: [{name, values}] as long as times;
 * opt.max fixes the top of the axis (else it follows the data);
 * opt.fmt formats a value. The window is the data's span, at least a
 * minute and at most five. Writes a legend with each line's last value
 * beside the canvas, and data-samples (points drawn) on it.
 */
function drawChart(canvas, times, series, opt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const fmt = opt.fmt || fmtNum;
  const L = 52, R = 8, T = 8, B = 20, pw = w - L - R, ph = h - T - B;

  const tEnd = times.length ? times[times.length - 1] : 0;
  const span = Math.min(300e3, Math.max(60e3, times.length ? tEnd - times[0] : 0));
  let top = opt.max;
  if (top === undefined) {
    let m = 0;
    for (const s of series) for (const v of s.values) if (v > m) m = v;
    top = axisTop(m, opt.fmt === fmtBytes);
  }
  const x = (t) => L + pw * (1 - (tEnd - t) / span);
  const y = (v) => T + ph * (1 - Math.min(v, top) / top);

  /* The grid: four steps up the value axis, a line a minute along time. */
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  g.strokeStyle = "#e4e7eb";
  g.fillStyle = "#6b7280";
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(L, yy); g.lineTo(L + pw, yy); g.stroke();
    g.fillText(fmt(v), L - 6, yy);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  for (let m = 0; m * 60e3 <= span; m++) {
    const xx = Math.round(x(tEnd - m * 60e3)) + 0.5;
    g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, T + ph); g.stroke();
    g.fillText(m ? "-" + m + " min" : "now", Math.min(Math.max(xx, L + 14), L + pw - 14), T + ph + 4);
  }

  let drawn = 0;
  g.lineWidth = 1.5;
  g.lineJoin = "round";
  series.forEach((s, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.beginPath();
    s.values.forEach((v, j) => {
      const px = x(times[j]), py = y(v);
      if (j === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    if (s.values.length === 1) g.arc(x(times[0]), y(s.values[0]), 1.5, 0, 7);
    g.stroke();
    drawn += s.values.length;
  });
  canvas.dataset.samples = String(times.length);
  canvas.dataset.points = String(drawn);

  const legend = canvas.nextElementSibling;
  legend.replaceChildren(...series.map((s, i) => el("span", {},
    el("i", { style: "background:" + COLORS[i % COLORS.length] }),
    s.name + " ", el("b", {}, s.values.length ? fmt(s.values[s.values.length - 1]) : "-"))));
}

/* ---- statistics: the charts and the header --------------------------------- */

function addSamples(st) {
  if (st.samples.length && st.samples[st.samples.length - 1].t < state.lastT) {
    state.samples = []; /* the VM restarted: its clock did too */
    state.lastT = -1;
  }
  for (const s of st.samples) {
    if (s.t <= state.lastT) continue;
    state.samples.push(s);
    state.lastT = s.t;
  }
  if (state.samples.length > KEEP) state.samples.splice(0, state.samples.length - KEEP);
}

/* One line per scheduler of the per-scheduler array field. */
function perScheduler(field, scale) {
  const n = state.schedulers;
  const out = [];
  for (let i = 0; i < n; i++)
    out.push({ name: "s" + i, values: state.samples.map((s) => ((s[field] || [])[i] || 0) * scale) });
  return out;
}

function line(name, f) { return { name, values: state.samples.map(f) }; }

function drawCharts() {
  const t = state.samples.map((s) => s.t);
  const per = state.intervalMs / 1000;
  drawChart($("c-util"), t, perScheduler("util", 1), { max: 1, fmt: fmtPct });
  drawChart($("c-runq"), t, perScheduler("runq", 1), {});
  drawChart($("c-steals"), t, perScheduler("steals", 1000 / state.intervalMs), {});
  drawChart($("c-procs"), t, [line("processes", (s) => s.procs)], { fmt: fmtNum });
  drawChart($("c-msgs"), t, [line("messages/s", (s) => s.msgs_per_s),
                             line("spawns/s", (s) => s.spawns_per_s)], {});
  drawChart($("c-faults"), t, [line("restarts/s", (s) => s.restarts / per),
                               line("dead letters/s", (s) => s.dead_letters / per)], {});
  drawChart($("c-mem"), t, [line("heaps", (s) => s.mem.heaps), line("stacks", (s) => s.mem.stacks),
                            line("messages", (s) => s.mem.msgs)], { fmt: fmtBytes });
}

function showHeader(st) {
  $("node").textContent = st.node || "not distributed";
  const last = state.samples[state.samples.length - 1];
  const parts = ["up " + fmtDuration(st.uptime_ms), st.schedulers + " schedulers"];
  if (last) parts.push(fmtInt(last.procs) + " processes", fmtNum(last.msgs_per_s) + " msgs/s");
  $("summary").textContent = parts.join(" \u00b7 ");
}

async function pollStats() {
  const st = await getJSON("/api/stats" + (state.lastT >= 0 ? "?since=" + state.lastT : ""));
  state.schedulers = st.schedulers;
  state.intervalMs = st.interval_ms || 1000;
  if (state.killAllowed !== !!st.kill_allowed) {
    state.killAllowed = !!st.kill_allowed;
    if (state.selected) pollDetail().catch(report);
  }
  addSamples(st);
  drawCharts();
  showHeader(st);
}

/* ---- the process table ----------------------------------------------------- */

const COLUMNS = [
  { key: "pid", label: "pid", fmt: fmtPid, num: true },
  { key: "name", label: "name" },
  { key: "registered", label: "registered" },
  { key: "status", label: "status" },
  { key: "reductions", label: "reductions", fmt: fmtInt, num: true },
  { key: "reds_per_s", label: "reds/s", fmt: fmtNum, num: true },
  { key: "mailbox", label: "mailbox", fmt: fmtInt, num: true },
  { key: "heap_bytes", label: "heap", fmt: fmtBytes, num: true },
  { key: "scheduler", label: "sched", fmt: (v) => (v >= 0 ? String(v) : "-"), num: true },
  { key: "supervisor", label: "supervisor", fmt: (v) => procLabel(v), num: true, left: true },
];

/* A process by its registered name, else its name, else its pid. */
function procLabel(pid) {
  const p = state.byPid.get(pid);
  return p && (p.registered || p.name) || fmtPid(pid);
}

function drawTableHead() {
  const cells = COLUMNS.map((c) => {
    const mark = state.sortKey === c.key ? (state.sortDesc ? " \u25bc" : " \u25b2") : "";
    return el("th", { class: c.num && !c.left ? "num" : null, "data-key": c.key, title: "sort by " + c.label,
                      on: { click: () => sortBy(c.key) } }, c.label + mark);
  });
  $("proc-table").tHead.rows[0].replaceChildren(...cells);
}

function sortBy(key) {
  if (state.sortKey === key) state.sortDesc = !state.sortDesc;
  else { state.sortKey = key; state.sortDesc = COLUMNS.find((c) => c.key === key).num; }
  drawTableHead();
  drawTable();
}

function matches(p, f) {
  if (!f) return true;
  return [fmtPid(p.pid), String(p.pid), p.name, p.registered, p.status, p.supervisor && procLabel(p.supervisor)]
    .some((s) => s && String(s).toLowerCase().includes(f));
}

function compare(a, b) {
  const k = state.sortKey;
  let va = a[k], vb = b[k];
  if (va === null || va === undefined) va = typeof vb === "number" ? -Infinity : "";
  if (vb === null || vb === undefined) vb = typeof va === "number" ? -Infinity : "";
  const c = typeof va === "number" && typeof vb === "number" ? va - vb
          : String(va).localeCompare(String(vb));
  return (state.sortDesc ? -c : c) || a.pid - b.pid;
}

function drawTable() {
  const f = state.filter.trim().toLowerCase();
  const rows = state.procs.filter((p) => matches(p, f)).sort(compare);
  const shown = rows.slice(0, MAX_ROWS);
  const trs = shown.map((p) => el("tr", {
      "data-pid": p.pid, class: p.pid === state.selected ? "selected" : null,
      on: { click: () => select(p.pid) } },
    COLUMNS.map((c) => {
      const v = p[c.key];
      const warn = c.key === "mailbox" && v >= 1000;
      const text = c.fmt ? c.fmt(v) : v ?? "";
      return el("td", { class: (c.num && !c.left ? "num" : "") + (warn ? " warn" : "") || null,
                        title: c.left || !c.num ? text || null : null }, text);
    })));
  const table = $("proc-table");
  table.tBodies[0].replaceChildren(...trs);
  table.dataset.rows = String(shown.length);
  $("proc-count").textContent = f ? rows.length + " of " + state.procs.length : String(state.procs.length);
  $("proc-note").textContent =
    (rows.length > shown.length ? "Showing the first " + shown.length + " of " + rows.length +
      "; filter to narrow. " : "") +
    (state.truncated ? "The VM listed only its first " + state.procs.length + " processes." : "");
}

async function pollProcesses() {
  const r = await getJSON("/api/processes");
  state.procs = r.processes || [];
  state.truncated = !!r.truncated;
  state.byPid = new Map(state.procs.map((p) => [p.pid, p]));
  if (state.selectName) {
    const p = state.procs.find((q) => q.registered === state.selectName);
    if (p) { state.selectName = null; select(p.pid); }
  }
  drawTable();
}

/* ---- supervision trees ------------------------------------------------------ */

/* A pid that opens its detail; named: followed by its name, if known. */
function pidLink(pid, named) {
  if (typeof pid !== "number" || pid <= 0) return el("span", { class: "pid" }, "-");
  const p = named && state.byPid.get(pid);
  return el("span", { class: "plink" },
    el("a", { class: "pid", href: "#pid=" + pid,
              on: { click: (e) => { e.preventDefault(); select(pid); } } }, fmtPid(pid)),
    p && (p.registered || p.name) ? el("span", { class: "muted" }, " " + (p.registered || p.name)) : null);
}

function restartBadge(n) {
  return n > 0 ? el("span", { class: "badge", title: "restarts" }, "\u21bb " + n) : null;
}

/* Whether a child anywhere under n restarted within the last minute. */
function recentBelow(n) {
  return (n.children || []).some((c) => c.recent || recentBelow(c));
}

/* Folded when first seen: the observer's own tree, and big supervisors. */
function foldsAtFirst(n) {
  return /^krill_observer/.test(n.name || "") || (n.children || []).length > 12;
}

/* One tree node: a supervisor folds (<details>), a worker is a line. */
function treeNode(n, path) {
  const key = path + "/" + (n.id ?? n.name ?? n.pid);
  const kids = n.children || [];
  if (n.type === "supervisor" && !state.seen.has(key)) {
    state.seen.add(key);
    if (foldsAtFirst(n)) state.collapsed.add(key);
  }
  const folded = state.collapsed.has(key);
  const label = [
    el("span", { class: "kind " + n.type }, n.type === "supervisor" ? "sup" : "worker"),
    " ", el("span", { class: "tname" }, n.id || n.name || ""),
    n.name && n.id && n.name !== n.id ? el("span", { class: "muted" }, " " + n.name) : null,
    " ", pidLink(n.pid),
    n.strategy ? el("span", { class: "muted" }, " " + n.strategy + ", " + kids.length +
                    (kids.length === 1 ? " child" : " children")) : null,
    " ", restartBadge(n.restarts),
    n.recent ? el("span", { class: "recent" }, "restarted < 60 s ago") : null,
    folded && recentBelow(n) ? el("span", { class: "recent" }, "a child restarted < 60 s ago") : null,
  ];
  const attrs = { class: "tnode" + (n.recent ? " is-recent" : ""), "data-pid": n.pid,
                  "data-restarts": n.restarts || 0, "data-type": n.type };
  if (n.type !== "supervisor" || !kids.length)
    return el("li", attrs, el("div", { class: "leaf" }, label));
  const d = el("details", { open: !folded }, el("summary", {}, label),
               el("ul", {}, kids.map((c) => treeNode(c, key))));
  d.addEventListener("toggle", () => {
    if (d.open) state.collapsed.delete(key); else state.collapsed.add(key);
  });
  return el("li", attrs, d);
}

async function pollTrees() {
  const r = await getJSON("/api/trees");
  const trees = r.trees || [];
  $("tree-body").replaceChildren(trees.length
    ? el("ul", { class: "tree" }, trees.map((t) => treeNode(t, "")))
    : el("p", { class: "note" }, "No supervisor is running."));
  $("trees").dataset.trees = String(trees.length);
}

/* ---- one process's detail ------------------------------------------------- */

function select(pid) {
  state.selected = pid;
  history.replaceState(null, "", pid ? "#pid=" + pid : location.pathname);
  for (const tr of $("proc-table").tBodies[0].rows)
    tr.classList.toggle("selected", Number(tr.dataset.pid) === pid);
  $("detail").hidden = !pid;
  if (pid) { $("detail-body").replaceChildren(el("p", { class: "note" }, "loading")); pollDetail().catch(report); }
}

function pidList(pids) {
  if (!pids || !pids.length) return el("span", { class: "muted" }, "none");
  return el("span", { class: "pids" }, pids.map((p) => pidLink(p, true)));
}

async function kill(p) {
  const who = fmtPid(p.pid) + (p.registered || p.name ? " (" + (p.registered || p.name) + ")" : "");
  if (!confirm("Send " + who + " an exit signal kill? It cannot trap it.")) return;
  let msg;
  try {
    const r = await request("/api/kill?pid=" + p.pid, { method: "POST" });
    msg = r.ok ? "kill sent to " + who : "not killed: " + (r.body.error || r.status);
  } catch (e) {
    if (!(e instanceof NetError)) throw e;
    msg = "not killed: " + e.message;
  }
  $("detail-msg").textContent = msg;
  pollDetail().catch(report);
}

function drawDetail(p) {
  /* A process busy in its own code (never calling krill) cannot say. */
  const unknown = p.links_error && el("span", { class: "muted" }, "unknown: " + p.links_error +
    " (the process did not answer: one busy in its own code, not calling krill, cannot)");
  const alsoUnknown = () => el("span", { class: "muted" }, "unknown");
  const rows = [
    ["name", p.name || "-"], ["registered", p.registered || "-"], ["status", p.status],
    ["reductions", fmtInt(p.reductions) + " (" + fmtNum(p.reds_per_s) + "/s)"],
    ["mailbox", fmtInt(p.mailbox)], ["heap", fmtBytes(p.heap_bytes)],
    ["scheduler", p.scheduler >= 0 ? String(p.scheduler) : "-"],
    ["supervisor", pidLink(p.supervisor, true)], ["links", unknown || pidList(p.links)],
    ["monitors", unknown ? alsoUnknown() : p.monitors && p.monitors.length
      ? el("span", { class: "pids" }, p.monitors.map((m) =>
          el("span", { class: "plink" }, pidLink(m.pid, true), el("span", { class: "muted" }, " (ref " + m.ref + ")"))))
      : el("span", { class: "muted" }, "none")],
    ["monitored by", unknown ? alsoUnknown() : pidList(p.monitored_by)],
  ];
  $("detail-title").textContent = fmtPid(p.pid) + (p.registered ? " " + p.registered : p.name ? " " + p.name : "");
  const keep = $("detail-msg") ? $("detail-msg").textContent : "";
  $("detail-body").replaceChildren(
    el("table", { class: "kv" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
    state.killAllowed
      ? el("button", { id: "kill", class: "danger", on: { click: () => kill(p).catch(report) } }, "Kill (exit signal kill)")
      : el("p", { class: "note" }, "Killing is off: start the observer with allow_kill to enable it."),
    el("p", { id: "detail-msg", class: "note" }, keep));
  $("detail").dataset.pid = String(p.pid);
}

async function pollDetail() {
  const pid = state.selected;
  if (!pid) return;
  const r = await request("/api/process?pid=" + pid);
  if (pid !== state.selected) return;
  $("detail").dataset.pid = String(pid);
  if (r.status === 404) {
    $("detail-title").textContent = fmtPid(pid);
    $("detail-body").replaceChildren(el("p", { class: "note gone" }, "This process has ended."));
    return;
  }
  if (!r.ok) throw new NetError("/api/process: " + r.status + " " + (r.body.error || ""));
  drawDetail(r.body);
}

/* ---- connected nodes ------------------------------------------------------- */

/* Only http(s) addresses become links: a node's name is the peer's to choose. */
function safeURL(u) {
  return typeof u === "string" && /^https?:\/\/[^\s]+$/i.test(u) ? u : null;
}

async function pollNodes() {
  const r = await getJSON("/api/nodes");
  const nodes = r.nodes || [];
  const items = nodes.map((n) => {
    const u = safeURL(n.observer);
    return el("li", {}, el("span", { class: "tname" }, n.name),
              " ", u ? el("a", { href: u }, "observer") : el("span", { class: "muted" }, "no observer"));
  });
  $("node-body").replaceChildren(
    el("p", {}, "This node: ", el("b", {}, r.self || "not distributed")),
    nodes.length ? el("ul", { class: "nodes" }, items)
                 : el("p", { class: "note" }, "No other node is connected."));
}

/* ---- the loop --------------------------------------------------------------- */

function setLive(ok, why) {
  const l = $("live");
  l.className = "live " + (ok ? "ok" : "stale");
  l.textContent = ok ? "live" : "no answer";
  l.title = ok ? "updated " + new Date().toLocaleTimeString() : why;
}

async function poll() {
  try {
    const jobs = [pollStats(), pollProcesses(), pollTrees(), pollDetail()];
    if (state.polls % 5 === 0) jobs.push(pollNodes());
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    failed.forEach(report);
    setLive(!failed.length, failed.map(String).join("; "));
    state.polls++;
    document.body.dataset.polls = String(state.polls);
  } finally {
    setTimeout(poll, POLL_MS); /* whatever happened, ask again */
  }
}

function start() {
  drawTableHead();
  $("filter").addEventListener("input", (e) => { state.filter = e.target.value; drawTable(); });
  $("detail-close").addEventListener("click", () => select(0));
  /* #pid=N or #name=REGISTERED opens that process's detail. */
  const m = /^#pid=(\d+)$/.exec(location.hash);
  if (m) select(Number(m[1]));
  const n = /^#name=(.+)$/.exec(location.hash);
  try {
    if (n) state.selectName = decodeURIComponent(n[1]);
  } catch (e) { /* a malformed link: open nothing */ }
  window.addEventListener("resize", drawCharts);
  poll();
}

start();
