// The control-room board: signs in with a token, follows each of the organisation's incident
// feeds as Server-Sent Events and keeps one card per incident, changed in place as updates and
// retractions arrive. No framework and no third-party code: the page is served from the gateway
// binary and must work on an air-gapped control-room display.
//
// Everything the feed carries is written with textContent, never as HTML, so a hostile field
// value cannot run script (the Content-Security-Policy forbids inline script as a second guard).
"use strict";

const TOKEN_KEY = "bluelight.token";
const WINDOW_HOURS = 12;
const MAX_INCIDENTS = 500; // cards kept; the oldest updated go first
const TIMELINE_MAX = 50;
const IDLE_MS = 45000; // three missed keep-alives
const PRIORITY = {
  IMMEDIATE: ["p1", "Immediate"],
  PRIORITY: ["p2", "Priority"],
  SCHEDULED: ["p3", "Scheduled"],
  RESOLUTION_WITHOUT_DEPLOYMENT: ["p4", "Resolved without deployment"],
};

const $ = (id) => document.getElementById(id);
const incidents = new Map(); // incident id -> state
let session = null; // { token, me, aborts: [] }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function when(ms) {
  if (typeof ms !== "number") return "";
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function day(ms) {
  if (typeof ms !== "number") return "";
  return new Date(ms).toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
}

function label(code) {
  if (!code) return "";
  return code.label || code.code || "";
}

// ---------------------------------------------------------------- sign-in

async function api(path, token) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

async function signIn(token) {
  const me = await api("/v1/me", token);
  const feeds = await api("/v1/feeds", token);
  sessionStorage.setItem(TOKEN_KEY, token);
  session = { token, me, aborts: [] };
  $("who").textContent = me.name + " · " + me.org + " · " + me.role;
  $("whoami").hidden = false;
  $("sign-in-panel").hidden = true;
  $("board").hidden = false;
  const incidentFeeds = feeds.feeds.filter((f) => f.entity === "incident");
  if (incidentFeeds.length === 0) {
    $("feeds-line").textContent = "No agreement in force shares incidents with " + me.org + ".";
    setLink(null);
  } else {
    $("feeds-line").textContent = "Feeds: " + incidentFeeds.map((f) =>
      f.feed + " (" + f.agreements.map((a) => a.id + " v" + a.version).join(", ") + ")").join("; ");
    for (const f of incidentFeeds) follow(f.feed);
  }
  render();
}

function signOut(message) {
  if (session) for (const a of session.aborts) a.abort();
  session = null;
  links.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  incidents.clear();
  $("incidents").replaceChildren();
  $("map").replaceChildren();
  $("whoami").hidden = true;
  $("board").hidden = true;
  $("sign-in-panel").hidden = false;
  const e = $("sign-in-error");
  e.hidden = !message;
  e.textContent = message || "";
}

// ---------------------------------------------------------------- the feed

const links = new Map(); // feed -> up?
function setLink(feed, up) {
  if (feed) links.set(feed, up);
  const all = [...links.values()];
  const l = $("link");
  const ok = all.length > 0 && all.every(Boolean);
  l.className = "link " + (ok ? "up" : "down");
  l.textContent = all.length === 0 ? "no feeds" : ok ? "live" : "reconnecting";
}

// Follows one feed for as long as the session lasts, resuming from the last event id after any
// break (a closed connection, a gateway restart, or the gateway saying this client lagged).
async function follow(feed) {
  const ctl = new AbortController();
  const mine = session;
  mine.aborts.push(ctl);
  let lastId = null;
  let backoff = 500;
  const from = new Date(Date.now() - WINDOW_HOURS * 3600 * 1000).toISOString();
  while (session === mine && !ctl.signal.aborted) {
    try {
      const headers = { Authorization: "Bearer " + mine.token, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const url = "/v1/feeds/" + encodeURIComponent(feed) + "/events" +
        (lastId ? "" : "?from=" + encodeURIComponent(from));
      // Each connection has its own abort, pulled when nothing (not even the gateway's 15 s
      // keep-alive) arrives for IDLE_MS: a silently dead connection must not look live.
      const conn = new AbortController();
      const stop = () => conn.abort();
      ctl.signal.addEventListener("abort", stop);
      let idle = setTimeout(stop, IDLE_MS);
      try {
        const r = await fetch(url, { headers, signal: conn.signal, cache: "no-store" });
        if (r.status === 401) { signOut("Your token is no longer accepted; sign in again."); return; }
        if (r.status === 403) { $("feeds-line").textContent = "The gateway no longer lets this console read " + feed + "."; setLink(feed, false); return; }
        // A position the feed cannot serve (the topic was recreated, say): start again from the
        // time window; events already shown are recognised by their ids and not repeated.
        if (r.status === 400 && lastId) { lastId = null; throw new Error("resume position refused"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        setLink(feed, true);
        backoff = 500;
        await readEvents(r.body, () => { clearTimeout(idle); idle = setTimeout(stop, IDLE_MS); }, (type, id, data) => {
          if (id) lastId = id;
          if (type === "record") applyRecord(JSON.parse(data).record);
          else if (type === "lagged" || type === "shutdown") lastId = JSON.parse(data).resume_from || lastId;
        });
      } finally {
        clearTimeout(idle);
        ctl.signal.removeEventListener("abort", stop);
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      console.warn("feed " + feed + ": " + e.message);
    }
    setLink(feed, false);
    await new Promise((res) => setTimeout(res, backoff));
    backoff = Math.min(backoff * 2, 15000);
  }
}

// A minimal text/event-stream parser (the browser's EventSource cannot send a bearer token).
async function readEvents(body, onChunk, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let type = "message", id = null, data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onChunk();
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (data.length) onEvent(type, id, data.join("\n"));
        type = "message"; id = null; data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? "" : line.slice(c + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "event") type = v;
      else if (field === "data") data.push(v);
      else if (field === "id") id = v;
    }
  }
}

// ---------------------------------------------------------------- incidents

function applyRecord(rec) {
  if (!rec || !rec.envelope) return;
  const env = rec.envelope;
  const id = rec.incident_id;
  let s = incidents.get(id);
  if (!s) {
    s = { record: null, timeline: [], retracted: null, seq: 0 };
    incidents.set(id, s);
  }
  s.seq = performance.now();
  const seen = s.timeline.some((t) => t.event_id === env.event_id);
  if (seen) return; // the same event again (a resume overlap) changes nothing
  if (env.retracts) {
    for (const t of s.timeline) if (t.event_id === env.retracts.event_id) t.withdrawn = env.retracts.reason;
    s.timeline.push({ event_id: env.event_id, at: env.recorded_at, withdraws: env.retracts.event_id,
      text: "withdrawn: " + env.retracts.reason });
    const live = s.timeline.some((t) => !t.withdraws && !t.withdrawn);
    if (!live) s.retracted = env.retracts.reason;
  } else {
    s.timeline.push({ event_id: env.event_id, at: env.occurred_at,
      text: [env.event_type, rec.status, rec.priority].filter(Boolean).join(" · ") });
    s.record = rec;
    s.retracted = null;
  }
  while (s.timeline.length > TIMELINE_MAX) s.timeline.shift();
  while (incidents.size > MAX_INCIDENTS) {
    let oldest = null;
    for (const [k, v] of incidents) if (!oldest || v.seq < oldest[1].seq) oldest = [k, v];
    incidents.delete(oldest[0]);
  }
  scheduleRender();
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

const FIELDS_SHOWN = ["incident_type", "priority", "status", "location", "hazards", "casualties", "context",
  "agencies_requested", "resources", "methane", "closure"];

function card(id, s) {
  const rec = s.record || {};
  const [pcls, ptext] = PRIORITY[rec.priority] || ["", rec.priority || ""];
  const li = el("li", "incident " + pcls + (s.retracted ? " retracted" : ""));
  li.dataset.incidentId = id;
  const top = el("div", "top");
  top.append(el("span", "type", label(rec.incident_type) || "Incident"));
  if (ptext) top.append(el("span", "badge priority", ptext));
  if (rec.status) top.append(el("span", "badge status", rec.status));
  top.append(el("span", "id", id));
  li.append(top);
  if (s.retracted) li.append(el("div", "retraction", "Retracted: " + s.retracted));
  const loc = rec.location;
  if (loc) {
    const where = [loc.address, loc.postcode, loc.description].filter(Boolean).join(", ");
    if (where) li.append(el("div", "where", where));
  }
  if (Array.isArray(rec.hazards) && rec.hazards.length) {
    const chips = el("div", "chips");
    for (const h of rec.hazards) chips.append(el("span", null, label(h)));
    li.append(chips);
  }
  const cas = rec.casualties;
  if (cas && typeof cas === "object") {
    const parts = Object.entries(cas).filter(([, n]) => typeof n === "number").map(([k, n]) => n + " " + k);
    if (parts.length) li.append(el("div", "casualties", "Casualties: " + parts.join(", ")));
  } else if (typeof cas === "number") {
    li.append(el("div", "casualties", "Casualties: " + cas));
  }
  const ctx = contextPanel(rec.context);
  if (ctx) li.append(ctx);
  const d = rec.envelope && rec.envelope.disclosure;
  if (d) {
    const got = FIELDS_SHOWN.filter((f) => rec[f] !== null && rec[f] !== undefined &&
      !(Array.isArray(rec[f]) && rec[f].length === 0));
    li.append(el("div", "allowed", "Shared under " + d.agreement_id + " clause " + d.clause_id +
      "; fields received: " + (got.length ? got.join(", ") : "none beyond the incident id")));
  }
  const det = el("details");
  det.append(el("summary", null, "Timeline (" + s.timeline.length + ")"));
  const ol = el("ol", "timeline");
  for (const t of s.timeline) ol.append(el("li", t.withdrawn ? "withdrawn" : null, when(t.at) + " " + t.text));
  det.append(ol);
  li.append(det);
  return li;
}

const WORDS = { PERSON_OF_CONCERN: "person of concern", FIRE_RESCUE: "fire and rescue",
  MENTAL_HEALTH: "mental health", LOCAL_AUTHORITY: "local authority" };
function word(s) { return WORDS[s] || String(s).toLowerCase().replace(/_/g, " "); }

// The context block an agreement's [[context]] clause sent with this record: each person or
// place with earlier contacts, its flags explained (the rule, its count and window, the events
// it cites), and the counts the clause shares. Absent when the agreement has no such clause.
function contextPanel(c) {
  if (!c || !Array.isArray(c.subjects) || c.subjects.length === 0) return null;
  const box = el("section", "context");
  box.append(el("div", "context-head", "Context as of " + day(c.as_of) + " " + when(c.as_of) +
    " \u00b7 shared under clause " + c.clause_id));
  for (const s of c.subjects) {
    const sub = el("div", "context-subject");
    const roles = (s.roles || []).map(word).join(", ");
    sub.append(el("div", "who", s.kind === "LOCATION" ? "This address (" + s.subject_ref + ")"
      : "Person " + s.subject_ref + (roles ? " \u00b7 " + roles : "")));
    for (const f of s.flags || []) {
      const flag = el("div", "flag");
      flag.append(el("strong", null, "\u26a0 " + f.explanation));
      flag.append(el("div", "why", "Why: rule " + f.rule + " holds from " + f.at_least +
        " contacts within " + f.window_days + " days; there were " + f.count +
        ". Evidence (opening event of each): " +
        (f.evidence || []).join(", ")));
      sub.append(flag);
    }
    if (Array.isArray(s.windows) && s.windows.length) {
      const counts = s.windows.map((w) => w.contacts + " in " + w.days + " days").join(" \u00b7 ");
      sub.append(el("div", "counts", "Contacts: " + counts));
      const widest = s.windows[s.windows.length - 1];
      const by = (widest.by_agency || []).map((a) => word(a.code) + " " + a.count).join(", ");
      if (by) sub.append(el("div", "counts", "By agency (" + widest.days + " days): " + by));
    }
    if (typeof s.open_cases === "number") sub.append(el("div", "counts", "Open cases: " + s.open_cases));
    if (Array.isArray(s.markers) && s.markers.length) {
      sub.append(el("div", "counts", "Markers: " + s.markers.map(word).join(", ")));
    }
    const last = s.last_contact;
    if (last) {
      sub.append(el("div", "counts", "Last contact before this: " + day(last.at) +
        (last.incident_type ? ", " + word(last.incident_type) : "") +
        ((last.agencies || []).length ? ", " + last.agencies.map(word).join(", ") : "")));
    }
    box.append(sub);
  }
  return box;
}

function render() {
  const list = [...incidents.entries()].filter(([, s]) => s.record || s.retracted);
  list.sort((a, b) => b[1].seq - a[1].seq);
  const open = new Set([...document.querySelectorAll("#incidents details[open]")]
    .map((d) => d.closest("li").dataset.incidentId));
  const items = list.map(([id, s]) => {
    const c = card(id, s);
    if (open.has(id)) c.querySelector("details").open = true;
    return c;
  });
  $("incidents").replaceChildren(...items);
  $("count").textContent = String(list.filter(([, s]) => !s.retracted).length);
  $("empty").hidden = list.length > 0;
  drawMap(list);
}

// Plots each incident's coordinates, scaled to the box that holds them all; no tiles.
function drawMap(list) {
  const svg = $("map");
  const NS = "http://www.w3.org/2000/svg";
  const pts = list.map(([id, s]) => [id, s, s.record && s.record.location])
    .filter(([, , l]) => l && typeof l.latitude === "number" && typeof l.longitude === "number");
  const nodes = [];
  for (let i = 1; i < 4; i++) {
    for (const [x1, y1, x2, y2] of [[i * 100, 0, i * 100, 400], [0, i * 100, 400, i * 100]]) {
      const g = document.createElementNS(NS, "line");
      g.setAttribute("class", "grid");
      g.setAttribute("x1", x1); g.setAttribute("y1", y1); g.setAttribute("x2", x2); g.setAttribute("y2", y2);
      nodes.push(g);
    }
  }
  if (pts.length) {
    const lats = pts.map((p) => p[2].latitude), lons = pts.map((p) => p[2].longitude);
    const pad = 0.01;
    const minLat = Math.min(...lats) - pad, maxLat = Math.max(...lats) + pad;
    const minLon = Math.min(...lons) - pad, maxLon = Math.max(...lons) + pad;
    const span = Math.max(maxLat - minLat, maxLon - minLon);
    for (const [id, s, l] of pts) {
      const x = 20 + ((l.longitude - minLon) / span) * 360;
      const y = 380 - ((l.latitude - minLat) / span) * 360;
      const c = document.createElementNS(NS, "circle");
      const [pcls] = PRIORITY[s.record.priority] || ["p4"];
      c.setAttribute("class", "pt " + pcls + (s.retracted ? " retracted" : ""));
      c.setAttribute("cx", x.toFixed(1)); c.setAttribute("cy", y.toFixed(1)); c.setAttribute("r", "6");
      c.setAttribute("fill", getComputedStyle(document.documentElement).getPropertyValue("--" + pcls) || "#fff");
      const title = document.createElementNS(NS, "title");
      title.textContent = label(s.record.incident_type) + " " + id;
      c.append(title);
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", (x + 8).toFixed(1)); t.setAttribute("y", (y + 4).toFixed(1));
      t.textContent = s.record.incident_type ? s.record.incident_type.code : "";
      nodes.push(c, t);
    }
  }
  svg.replaceChildren(...nodes);
}

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    try {
      await signIn(token);
    } catch (e) {
      signOut(e.status === 401 ? "That token is not recognised." : "Sign-in failed: " + e.message);
    }
  });
  $("sign-out").addEventListener("click", () => signOut(null));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved).catch(() => signOut("Your saved session has ended; sign in again."));
});
