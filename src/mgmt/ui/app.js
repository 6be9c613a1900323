// Ember dashboard: a small single-page app over the management API. No libraries and no network
// beyond this server: charts are drawn on <canvas> and in inline SVG by the code below. It polls
// the API every two seconds; every text from the server goes through esc() before it reaches the
// page (queue names, replies and settings come from the outside world).
"use strict";

const POLL_MS = 2000;
const COLORS = { in: "#2f6fdb", out: "#1a9b63", deferred: "#d98a00", bounced: "#d2372c" };
const state = { view: "overview", arg: "", sort: { queues: ["queue", 1], domains: ["domain", 1] }, filter: "" };

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const num = (v) => (v ?? 0).toLocaleString("en-US");
const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "");
const bytes = (b) => { const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; b = b || 0; while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; } return `${b.toFixed(i ? 1 : 0)} ${u[i]}`; };

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, init);
  const j = await r.json().catch(() => ({ message: r.statusText }));
  if (!r.ok) throw new Error(`${r.status}: ${j.message || r.statusText}`);
  return j.data;
}

function showError(e) {
  const box = $("#error");
  box.hidden = !e;
  box.textContent = e ? String(e.message || e) : "";
}

// ---- charts ---------------------------------------------------------------------------------

// A line chart of series [{label, color, values}] over per-minute labels (Unix minutes).
function lineChart(canvas, minutes, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = { l: 46, r: 10, t: 10, b: 22 };
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i) => pad.l + (i * (w - pad.l - pad.r)) / Math.max(1, minutes.length - 1);
  const y = (v) => h - pad.b - (v * (h - pad.t - pad.b)) / max;
  g.strokeStyle = "#dde1e8"; g.fillStyle = "#6b7385"; g.font = "11px system-ui"; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4, yy = y(v);
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(w - pad.r, yy); g.stroke();
    g.fillText(Math.round(v).toLocaleString("en-US"), 4, yy + 4);
  }
  minutes.forEach((m, i) => {
    if (i % 10 === 0 || i === minutes.length - 1) {
      g.fillText(new Date(m * 60000).toISOString().slice(11, 16), Math.min(x(i) - 14, w - 36), h - 6);
    }
  });
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
    s.values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
  }
}

function legend(series) {
  return `<div class="legend">${series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.label)}</span>`).join("")}</div>`;
}

// Horizontal stacked bars (delivered, deferred, bounced) per domain, in SVG.
function domainBars(list) {
  const rows = list.slice(0, 15);
  if (!rows.length) return `<div class="empty">No traffic yet.</div>`;
  const w = 760, rowH = 22, left = 200, h = rows.length * rowH + 10;
  const max = Math.max(1, ...rows.map((d) => d.delivered + d.deferred + d.bounced));
  const scale = (v) => (v * (w - left - 60)) / max;
  const bars = rows.map((d, i) => {
    let x = left, out = `<text x="4" y="${i * rowH + 15}">${esc(d.domain)}</text>`;
    for (const [k, c] of [["delivered", COLORS.out], ["deferred", COLORS.deferred], ["bounced", COLORS.bounced]]) {
      const bw = scale(d[k]);
      if (bw > 0) out += `<rect x="${x}" y="${i * rowH + 4}" width="${bw}" height="14" fill="${c}"><title>${esc(d.domain)} ${k}: ${d[k]}</title></rect>`;
      x += bw;
    }
    return out + `<text x="${x + 6}" y="${i * rowH + 15}">${num(d.delivered + d.deferred + d.bounced)}</text>`;
  });
  return `<svg viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="outcomes per domain">${bars.join("")}</svg>`;
}

// ---- tables ---------------------------------------------------------------------------------

function sortRows(rows, name) {
  const [key, dir] = state.sort[name];
  return rows.slice().sort((a, b) => {
    const x = a[key] ?? "", y = b[key] ?? "";
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
  });
}

function header(name, cols) {
  const [key, dir] = state.sort[name] || [];
  return `<tr>${cols.map(([k, label, cls]) => {
    const sorted = k === key ? (dir > 0 ? " sorted-asc" : " sorted-desc") : "";
    return `<th class="${cls || ""}${k ? " sortable" : ""}${sorted}" ${k ? `data-sort="${name}:${k}"` : ""}>${label}</th>`;
  }).join("")}</tr>`;
}

function modeCell(q) {
  const until = q.mode === "retry" ? q.retry_until : q.mode_until;
  const why = q.mode_reason || q.waiting_reason || "";
  return `<span class="mode ${esc(q.mode)}">${esc(q.mode)}</span>` +
    (until ? `<div class="reason">until ${esc(when(until))}</div>` : "") +
    (why ? `<div class="reason">${esc(why)}</div>` : "");
}

function queueLink(name) {
  return `<a class="queue" href="#queue/${encodeURIComponent(name)}">${esc(name)}</a>`;
}

// The event log and each sink's lag (none without an event log).
function eventSinks(ev) {
  if (!ev) return "";
  const rows = (ev.sinks || []).map((k) => `<tr data-sink="${esc(k.name)}"><td>${esc(k.name)}</td><td>${esc(k.type)}</td>
    <td class="num">${num(k.cursor)}</td><td class="num lag-events">${num(k.lag_events)}</td><td class="num">${Number(k.lag_seconds || 0).toFixed(1)} s</td>
    <td class="num">${num(k.delivered)}</td><td class="num">${num(k.failures)}</td><td class="num">${num(k.lost)}</td><td class="diag">${esc(k.last_error)}</td></tr>`).join("");
  return `<h2>Event log</h2>
    <p class="reason">newest #${num(ev.head)} · oldest #${num(ev.oldest)} · written ${num(ev.written)} · dropped ${num(ev.dropped)} · lost ${num(ev.lost)}</p>
    <table id="event-sinks"><tr><th>Sink</th><th>Type</th><th class="num">Cursor</th><th class="num">Lag (events)</th><th class="num">Lag (time)</th><th class="num">Delivered</th><th class="num">Failures</th><th class="num">Lost</th><th>Last error</th></tr>${rows}</table>`;
}

// ---- views ----------------------------------------------------------------------------------

const views = {
  async overview(root) {
    const s = await api("/api/v1/status");
    const m = s.minutes || [];
    const last = m[m.length - 1] || {};
    const t = s.traffic;
    root.innerHTML = `
      <div class="cards">
        <div class="card"><div class="label">Received</div><div class="value" id="received-total">${num(t.total.in.msg)}</div><div class="sub">${num(last.received_msgs)} in the last minute</div></div>
        <div class="card"><div class="label">Delivered</div><div class="value" id="delivered-total">${num(t.delivered)}</div><div class="sub">${num(last.delivered)}/min now</div></div>
        <div class="card"><div class="label">Deferred</div><div class="value" id="deferred-total">${num(t.deferred)}</div><div class="sub">${num(last.deferred)}/min now</div></div>
        <div class="card"><div class="label">Bounced</div><div class="value" id="bounced-total">${num(t.bounced)}</div><div class="sub">${num(last.bounced)}/min now</div></div>
        <div class="card"><div class="label">Queued recipients</div><div class="value" id="queued-total">${num(s.queue.smtp.rcp)}</div><div class="sub">${num(s.queue.smtp.dom)} queues, ${num(s.queue.smtp.paused)} paused</div></div>
        <div class="card"><div class="label">Connections in / out</div><div class="value" id="connections">${num(s.conn.smtpIn.cur)} / ${num(s.conn.smtpOut.cur)}</div><div class="sub">max ${num(s.conn.smtpIn.max)} / ${num(s.conn.smtpOut.max)}</div></div>
        <div class="card"><div class="label">Spool</div><div class="value" id="spool-messages">${num(s.spool.messages)}</div><div class="sub">messages, ${bytes(s.spool.bytes)} in ${num(s.spool.segments)} segments</div></div>
        <div class="card"><div class="label">DNS cache</div><div class="value">${num(s.resolver.namesCached)}</div><div class="sub">${num(s.resolver.queries)} queries, ${num(s.resolver.hits)} hits</div></div>
      </div>
      <div class="charts">
        <div class="chart"><h2>Throughput per minute</h2>${legend([{ label: "in (messages)", color: COLORS.in }, { label: "out (delivered)", color: COLORS.out }])}<canvas id="chart-throughput"></canvas></div>
        <div class="chart"><h2>Outcomes per minute</h2>${legend([{ label: "delivered", color: COLORS.out }, { label: "deferred", color: COLORS.deferred }, { label: "bounced", color: COLORS.bounced }])}<canvas id="chart-outcomes"></canvas></div>
      </div>
      ${eventSinks(s.events)}
      <p class="reason">Up ${num(s.uptime_s)} s · Ember ${esc(s.mta.version)}</p>`;
    const minutes = m.map((x) => x.minute);
    lineChart($("#chart-throughput"), minutes, [
      { color: COLORS.in, values: m.map((x) => x.received_msgs) },
      { color: COLORS.out, values: m.map((x) => x.delivered) },
    ]);
    lineChart($("#chart-outcomes"), minutes, [
      { color: COLORS.out, values: m.map((x) => x.delivered) },
      { color: COLORS.deferred, values: m.map((x) => x.deferred) },
      { color: COLORS.bounced, values: m.map((x) => x.bounced) },
    ]);
  },

  async queues(root) {
    const all = await api("/api/v1/queues?maxitems=all");
    const f = state.filter.toLowerCase();
    const rows = sortRows(all.filter((q) => !f || q.queue.toLowerCase().includes(f) || q.mode.includes(f)), "queues");
    const focused = document.activeElement && document.activeElement.id === "queue-filter";
    root.innerHTML = `
      <div class="toolbar"><input type="search" id="queue-filter" placeholder="filter: domain, vmta or mode" value="${esc(state.filter)}">
        <span class="reason">${rows.length} of ${all.length} queues</span></div>
      <table id="queues-table">${header("queues", [["queue", "Queue"], ["recipients", "#rcpt", "num"], ["connections", "Conn", "num"], ["mode", "Mode · reason · expiry"], ["delivered", "Delivered", "num"], ["deferred", "Deferred", "num"], ["bounced", "Bounced", "num"], ["last_error", "Last error"], [null, ""]])}
      ${rows.map((q) => `<tr data-queue="${esc(q.queue)}">
        <td>${queueLink(q.queue)}</td><td class="num">${num(q.recipients)}</td><td class="num">${num(q.connections)}</td>
        <td>${modeCell(q)}</td><td class="num">${num(q.delivered)}</td><td class="num">${num(q.deferred)}</td><td class="num">${num(q.bounced)}</td>
        <td class="diag">${esc(q.last_error)}</td>
        <td>${q.paused ? `<button class="resume" data-queue="${esc(q.queue)}">Resume</button>` : `<button class="pause" data-queue="${esc(q.queue)}">Pause</button>`}</td></tr>`).join("")}
      </table>${rows.length ? "" : `<div class="empty">No queues.</div>`}`;
    const input = $("#queue-filter");
    input.oninput = () => { state.filter = input.value; refresh(); };
    if (focused) { input.focus(); input.setSelectionRange(input.value.length, input.value.length); }
  },

  async queue(root, name) {
    const d = await api(`/api/v1/queues/detail?queue=${encodeURIComponent(name)}`);
    const q = d.queue;
    const events = (list, id) => list.length ? `<table id="${id}"><tr><th>Time</th><th>Event</th><th>Recipient</th><th>Job</th><th>Source IP</th><th>Remote IP</th><th>Reply</th></tr>
      ${list.map((e) => `<tr><td>${esc(when(e.time))}</td><td>${esc(e.kind)}</td><td>${esc(e.rcpt)}</td><td>${esc(e.job_id)}</td><td>${esc(e.source_ip)}</td><td>${esc(e.remote_ip)}</td><td class="diag">${esc(e.diag)}</td></tr>`).join("")}</table>` : `<div class="empty">None.</div>`;
    root.innerHTML = `
      <h2>${esc(q.queue)} ${q.paused ? `<button class="resume" data-queue="${esc(q.queue)}">Resume</button>` : `<button class="pause" data-queue="${esc(q.queue)}">Pause</button>`}</h2>
      <div class="cards">
        <div class="card"><div class="label">Mode</div><div class="value">${modeCell(q)}</div></div>
        <div class="card"><div class="label">Recipients</div><div class="value">${num(q.recipients)}</div><div class="sub">${num(q.messages_ready)} ready, ${num(q.messages_waiting)} waiting, ${num(q.held_recipients)} held</div></div>
        <div class="card"><div class="label">Connections</div><div class="value">${num(q.connections)}</div></div>
        <div class="card"><div class="label">Delivered / deferred / bounced</div><div class="value">${num(q.delivered)} / ${num(q.deferred)} / ${num(q.bounced)}</div></div>
      </div>
      <h2>Recent recipient events</h2>${events(d.events, "queue-events")}
      <h2>Recent errors</h2>${events(d.errors, "queue-errors")}
      <h2>Mode changes</h2>${d.mode_events.length ? `<table><tr><th>Time</th><th>Mode</th><th>Reason</th><th>Until</th></tr>${d.mode_events.slice().reverse().map((e) => `<tr><td>${esc(when(e.time))}</td><td>${esc(e.mode)}</td><td>${esc(e.reason)}</td><td>${esc(when(e.until))}</td></tr>`).join("")}</table>` : `<div class="empty">None.</div>`}
      <h2>Effective settings</h2><pre class="settings">${esc(d.settings_text)}</pre>`;
  },

  async domains(root) {
    const list = sortRows(await api("/api/v1/domains?maxitems=all"), "domains");
    root.innerHTML = `<h2>Outcomes per domain (top 15 by traffic)</h2>${legend([{ label: "delivered", color: COLORS.out }, { label: "deferred", color: COLORS.deferred }, { label: "bounced", color: COLORS.bounced }])}
      ${domainBars(list.slice().sort((a, b) => (b.delivered + b.deferred + b.bounced) - (a.delivered + a.deferred + a.bounced)))}
      <table id="domains-table">${header("domains", [["domain", "Domain"], ["recipients", "#rcpt", "num"], ["connections", "Conn", "num"], ["delivered", "Delivered", "num"], ["deferred", "Deferred", "num"], ["bounced", "Bounced", "num"], [null, "Virtual MTAs"], [null, "Not normal"]])}
      ${list.map((d) => `<tr><td>${esc(d.domain)}</td><td class="num">${num(d.recipients)}</td><td class="num">${num(d.connections)}</td><td class="num">${num(d.delivered)}</td><td class="num">${num(d.deferred)}</td><td class="num">${num(d.bounced)}</td>
        <td>${d.vmtas.map((v) => queueLink(`${d.domain}/${v}`)).join(" ")}</td><td>${esc(d.modes.join(", "))}</td></tr>`).join("")}</table>`;
  },

  async vmtas(root) {
    const list = await api("/api/v1/vmtas?maxitems=all");
    root.innerHTML = `<table id="vmtas-table"><tr><th>Virtual MTA</th><th>Source hosts</th><th>Pools</th><th class="num">max-smtp-out</th><th class="num">Queues</th><th class="num">#rcpt</th><th class="num">Conn</th><th class="num">Delivered</th><th class="num">Deferred</th><th class="num">Bounced</th></tr>
      ${list.map((v) => `<tr><td>${esc(v.name)}</td><td>${esc(v.source_hosts.join(", "))}</td><td>${esc(v.pools.join(", "))}</td><td class="num">${esc(v.max_smtp_out ?? "")}</td><td class="num">${num(v.queues)}</td><td class="num">${num(v.recipients)}</td><td class="num">${num(v.connections)}</td><td class="num">${num(v.delivered)}</td><td class="num">${num(v.deferred)}</td><td class="num">${num(v.bounced)}</td></tr>`).join("")}</table>`;
  },

  async jobs(root) {
    const list = await api("/api/v1/jobs?maxitems=all");
    root.innerHTML = list.length ? `<table id="jobs-table"><tr><th>Job</th><th>State</th><th class="num">Messages</th><th class="num">Recipients</th><th class="num">Delivered</th><th class="num">Deferred</th><th class="num">Bounced</th><th class="num">Queued</th><th>Last seen</th><th></th></tr>
      ${list.map((j) => `<tr><td>${esc(j.job_id)}</td><td>${j.paused ? "paused" : "active"}</td><td class="num">${num(j.received_msgs)}</td><td class="num">${num(j.received_rcpts)}</td><td class="num">${num(j.delivered)}</td><td class="num">${num(j.deferred)}</td><td class="num">${num(j.bounced)}</td><td class="num">${num(j.queued)}</td><td>${esc(when(j.last_seen))}</td>
        <td>${j.paused ? `<button class="resume-job" data-job="${esc(j.job_id)}">Resume</button>` : `<button class="pause-job" data-job="${esc(j.job_id)}">Pause</button>`}</td></tr>`).join("")}</table>` : `<div class="empty">No jobs yet (mail with an X-Job header or a campaign_id).</div>`;
  },

  async cluster(root) {
    const c = await api("/api/v1/cluster");
    if (!c.enabled) {
      root.innerHTML = `<div class="empty">Cluster mode is off (no cluster-redis in the configuration).</div>`;
      return;
    }
    const state = c.degraded ? "degraded: Redis unreachable, limits run on this node's share" : c.refused ? "refused membership: another live node holds this name" : "member";
    root.innerHTML = `<div id="cluster-state" class="${c.degraded || c.refused ? "warn" : ""}">Node ${esc(c.node)}: ${esc(state)}; ${num(c.live)} live node(s)</div>
      <table id="cluster-table"><tr><th>Node</th><th>Live</th><th>SMTP</th><th>Management</th><th>Version</th><th>Config</th><th class="num">Messages</th><th class="num">Recipients</th><th>Last seen</th></tr>
      ${c.nodes.map((n) => `<tr class="${n.config_differs ? "warn" : ""}"><td>${esc(n.name)}</td><td>${n.live ? (n.draining ? "draining" : "yes") : "no"}</td><td>${esc(n.smtp)}</td><td>${esc(n.mgmt)}</td><td>${esc(n.version)}</td>
        <td>${esc(n.config_hash)}${n.config_differs ? " (differs from this node's)" : ""}</td><td class="num">${num(n.messages)}</td><td class="num">${num(n.recipients)}</td><td>${esc(when(n.last_seen))}</td></tr>`).join("")}</table>`;
  },

  // A form, not a table: it is drawn once and kept across polls so typing is not lost.
  async suppression(root) {
    if ($("#suppression-form", root)) return;
    root.innerHTML = `<form id="suppression-form">
        <label>Address <input id="suppression-address" type="text" required size="40" placeholder="someone@example.com"></label>
        <button type="submit" id="suppression-check">Check</button>
        <button type="button" id="suppression-add" title="Operators: refuse this address at RCPT from now on">Suppress</button>
      </form>
      <div id="suppression-result" class="empty">Search the global suppression list (complaints, unsubscribes, hard bounces, imports).</div>`;
  },
};

async function suppression(add) {
  const address = $("#suppression-address").value.trim();
  if (!address) return;
  try {
    if (add) await api("/api/v1/suppression/add", { addresses: [address] });
    const r = await api(`/api/v1/suppression?address=${encodeURIComponent(address)}`);
    $("#suppression-result").textContent = `${r.address}: ${r.suppressed ? "suppressed" : "not suppressed"} (${num(r.entries)} addresses on the global list)`;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

document.addEventListener("submit", (ev) => {
  if (ev.target.id !== "suppression-form") return;
  ev.preventDefault();
  suppression(false);
});

// ---- wiring ---------------------------------------------------------------------------------

let timer = null, busy = false;

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    await views[state.view]($("#view"), state.arg);
    $("#last-update").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError(null);
  } catch (e) {
    showError(e);
  } finally {
    busy = false;
  }
}

function route() {
  const hash = decodeURIComponent(location.hash.slice(1)) || "overview";
  const [view, ...rest] = hash.split("/");
  state.view = views[view] ? view : "overview";
  state.arg = rest.join("/");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === state.view || (state.view === "queue" && a.dataset.view === "queues")));
  refresh();
}

document.addEventListener("click", async (ev) => {
  const t = ev.target;
  if (t.id === "suppression-add") return suppression(true);
  const sort = t.closest("th[data-sort]");
  if (sort) {
    const [name, key] = sort.dataset.sort.split(":");
    const [cur, dir] = state.sort[name];
    state.sort[name] = [key, cur === key ? -dir : 1];
    return refresh();
  }
  const actions = { pause: ["/api/v1/queues/pause", "queue"], resume: ["/api/v1/queues/resume", "queue"], "pause-job": ["/api/v1/jobs/pause", "job_id"], "resume-job": ["/api/v1/jobs/resume", "job_id"] };
  const kind = t.tagName === "BUTTON" && Object.keys(actions).find((k) => t.classList.contains(k));
  if (kind) {
    const [path, field] = actions[kind];
    t.disabled = true;
    try {
      await api(path, { [field]: t.dataset.queue ?? t.dataset.job });
      showError(null);
    } catch (e) {
      showError(e);
    }
    refresh();
  }
});

window.addEventListener("hashchange", route);
route();
timer = setInterval(refresh, POLL_MS);
