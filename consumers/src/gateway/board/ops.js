// The ops page: signs in with an ops token, polls /v1/ops every 2 s, and draws the last six
// minutes as line charts (plain SVG, no library). Counters arrive as totals; rates are computed
// here from successive snapshots, so a restarted service (its counters back at 0) shows a gap,
// not a negative spike.
"use strict";

const TOKEN_KEY = "bluelight.ops.token";
const EVERY_MS = 2000;
const KEEP = 180; // points: 6 minutes at 2 s

const $ = (id) => document.getElementById(id);
let token = null;
let timer = null;
let prev = null; // last snapshot, for rates
const history = {}; // chart id -> Map(series name -> [[t, v]])

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    const e = new Error(msg);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

async function signIn(t) {
  if (timer) clearInterval(timer);
  timer = null;
  token = t;
  const me = await api("/v1/me");
  if (me.role !== "ops") {
    token = null;
    throw new Error("this token is for a " + me.role + " console; the ops page needs an ops token");
  }
  await api("/v1/ops");
  sessionStorage.setItem(TOKEN_KEY, t);
  $("who").textContent = me.name + " · " + me.org + " · ops";
  $("whoami").hidden = false;
  $("sign-in-panel").hidden = true;
  $("ops").hidden = false;
  tick();
  timer = setInterval(tick, EVERY_MS);
}

function signOut(message) {
  if (timer) clearInterval(timer);
  timer = null; token = null; prev = null;
  for (const k of Object.keys(history)) delete history[k];
  sessionStorage.removeItem(TOKEN_KEY);
  $("whoami").hidden = true;
  $("ops").hidden = true;
  $("sign-in-panel").hidden = false;
  $("sign-in-error").hidden = !message;
  $("sign-in-error").textContent = message || "";
}

function push(chart, name, t, v) {
  if (!history[chart]) history[chart] = new Map();
  const h = history[chart];
  if (!h.has(name)) h.set(name, []);
  const pts = h.get(name);
  pts.push([t, v]);
  while (pts.length > KEEP) pts.shift();
}

function rate(now, before, dt) {
  if (before === undefined || dt <= 0 || now < before) return null; // first point, or a reset
  return (now - before) / dt;
}

async function tick() {
  let snap;
  try {
    snap = await api("/v1/ops");
  } catch (e) {
    if (e.status === 401 || e.status === 403) { signOut("Your token is no longer accepted; sign in again."); return; }
    $("link").className = "link down";
    $("link").textContent = "gateway unreachable";
    return;
  }
  $("link").className = "link up";
  $("link").textContent = "live";
  const f = snap.figures;
  const t = snap.at / 1000;
  const services = $("services");
  services.replaceChildren(...snap.services.map((s) => {
    const chip = el("span", s.up ? "up" : "down", s.name + (s.up ? " up" : " down"));
    if (s.error) chip.title = s.error;
    return chip;
  }));
  if (prev) {
    const p = prev.figures;
    const dt = t - prev.at / 1000;
    const r = (a, b) => rate(a, b, dt);
    push("in", "ingest accepted", t, r(f.in.ingest_accepted, p.in.ingest_accepted));
    push("in", "projector consumed", t, r(f.in.projector_consumed, p.in.projector_consumed));
    push("out", "disclosures", t, r(f.out.disclosures, p.out.disclosures));
    push("out", "retractions", t, r(f.out.retractions, p.out.retractions));
    push("out", "victim updates", t, r(f.out.victim_updates, p.out.victim_updates));
    push("out", "gateway stream events", t, r(f.out.gateway_events, p.out.gateway_events));
    for (const [a, v] of Object.entries(f.disclosures_by_agreement)) {
      push("agreements", a, t, r(v, p.disclosures_by_agreement[a] ?? 0));
    }
  }
  for (const [k, v] of Object.entries(f.lag)) push("lag", k, t, v);
  for (const [k, v] of Object.entries(f.dead_letters)) push("dlq", k, t, v);
  push("vc", "due soon", t, f.victims_code.due);
  push("vc", "overdue", t, f.victims_code.overdue);
  prev = snap;
  for (const c of ["in", "out", "lag", "agreements", "dlq", "vc"]) draw(c);
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function draw(chart) {
  const svg = $("chart-" + chart);
  const legend = $("legend-" + chart);
  const NS = "http://www.w3.org/2000/svg";
  const series = [...(history[chart] || new Map()).entries()];
  const all = series.flatMap(([, pts]) => pts.filter((p) => p[1] !== null));
  const nodes = [];
  const [W, H, L, B] = [400, 160, 34, 14];
  let max = Math.max(1, ...all.map((p) => p[1]));
  const nice = Math.pow(10, Math.floor(Math.log10(max)));
  max = Math.ceil(max / nice) * nice;
  // The window fills the width from the first point until six minutes are held.
  const tmax = Math.max(...all.map((p) => p[0]), 0);
  const tmin = Math.max(tmax - KEEP * EVERY_MS / 1000, Math.min(...all.map((p) => p[0]), tmax));
  for (const frac of [0, 0.5, 1]) {
    const y = H - B - frac * (H - B - 6);
    const line = document.createElementNS(NS, "line");
    line.setAttribute("x1", L); line.setAttribute("x2", W); line.setAttribute("y1", y); line.setAttribute("y2", y);
    line.setAttribute("stroke", "#2a3848");
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", 2); label.setAttribute("y", y + 3); label.setAttribute("class", "axis");
    label.textContent = fmt(max * frac);
    nodes.push(line, label);
  }
  const x = (tt) => L + ((tt - tmin) / (tmax - tmin || 1)) * (W - L);
  const y = (v) => H - B - (v / max) * (H - B - 6);
  const items = [];
  series.forEach(([name, pts], i) => {
    // A null (a reset or the first point) breaks the line.
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        const pl = document.createElementNS(NS, "polyline");
        pl.setAttribute("class", "c" + (i % 6));
        pl.setAttribute("points", run.join(" "));
        nodes.push(pl);
      }
      run = [];
    };
    for (const [tt, v] of pts) {
      if (v === null) { flush(); continue; }
      run.push(x(tt).toFixed(1) + "," + y(v).toFixed(1));
    }
    flush();
    const last = pts.length ? pts[pts.length - 1][1] : null;
    const item = el("span");
    item.append(el("span", "sw c" + (i % 6)), document.createTextNode(name + " " + fmt(last)));
    items.push(item);
  });
  const axis = document.createElementNS(NS, "text");
  axis.setAttribute("x", W - 90); axis.setAttribute("y", H - 2); axis.setAttribute("class", "axis");
  const span = Math.round(tmax - tmin);
  axis.textContent = span >= 60 ? "last " + Math.round(span / 60) + " min" : "last " + span + " s";
  nodes.push(axis);
  svg.replaceChildren(...nodes);
  legend.replaceChildren(...items);
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    try {
      await signIn(t);
    } catch (e) {
      signOut(e.status === 401 ? "That token is not recognised." : "Sign-in failed: " + e.message);
    }
  });
  $("sign-out").addEventListener("click", () => signOut(null));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved).catch(() => signOut("Your saved session has ended; sign in again."));
});
