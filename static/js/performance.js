// The dashboard's profit and loss (orders/templates/orders/_equity.html and friends): one
// equity chart per account (lightweight-charts, loaded as the global LightweightCharts) with
// range buttons that fetch /api/performance/accounts/<id>/equity, and live updates from the
// user's events on /ws/markets/ (equity.updated: a snapshot; position.updated with open false:
// a closed trade). On either, the returns, trade history and per-config sections are redrawn
// from the server's own rendering of the page (one fetch, at most once a second).
import { showToast } from "./toast.js";

const charts = new Map(); // account id -> {chart, series, range, points}
const state = { refreshes: 0, events: 0, socket: "closing" };
window.tradesitePerformance = {
  points: (account) => (charts.get(String(account)) || { points: [] }).points.length,
  state: () => ({ ...state }),
};

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function makeChart(el) {
  const LWC = window.LightweightCharts;
  const text = cssVar("--text", getComputedStyle(el).color || "#444");
  const chart = LWC.createChart(el, {
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: text },
    grid: { vertLines: { visible: false }, horzLines: { color: cssVar("--grid", "rgba(128,128,128,0.2)") } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { borderVisible: false },
  });
  const series = chart.addSeries(LWC.LineSeries, {
    color: cssVar("--accent", "#2962ff"), lineWidth: 2, priceLineVisible: false,
  });
  return { chart, series };
}

function toPoints(raw) {
  const out = [];
  for (const [ms, equity] of raw) {
    const value = Number(equity);
    const time = Math.floor(ms / 1000);
    if (!Number.isFinite(value)) continue;
    if (out.length && out[out.length - 1].time >= time) out[out.length - 1].value = value;
    else out.push({ time, value });
  }
  return out;
}

async function load(box, range) {
  const entry = charts.get(box.dataset.account);
  const note = box.querySelector(".perf-equity-note");
  entry.range = range;
  box.querySelectorAll("button[data-range]").forEach((b) =>
    b.setAttribute("aria-pressed", String(b.dataset.range === range)));
  try {
    const res = await fetch(`${box.dataset.url}?range=${encodeURIComponent(range)}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    if (entry.range !== range) return; // a newer click won
    entry.points = toPoints(body.points);
    entry.series.setData(entry.points);
    entry.chart.timeScale().fitContent();
    note.textContent = entry.points.length ? "" : "no equity snapshots in this range yet";
  } catch (err) {
    note.textContent = `could not load the equity curve (${err.message})`;
  }
}

function setUp() {
  document.querySelectorAll(".perf-equity").forEach((box) => {
    const { chart, series } = makeChart(box.querySelector(".perf-chart"));
    charts.set(box.dataset.account, { chart, series, range: null, points: [] });
    box.querySelectorAll("button[data-range]").forEach((button) =>
      button.addEventListener("click", () => load(box, button.dataset.range)));
    const pressed = box.querySelector('button[aria-pressed="true"]');
    load(box, pressed ? pressed.dataset.range : "1M");
  });
}

let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    try {
      const res = await fetch(location.href, { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const id of ["returns", "trades", "config-performance"]) {
        const fresh = doc.getElementById(id);
        const here = document.getElementById(id);
        if (fresh && here) here.replaceWith(fresh);
      }
      state.refreshes += 1;
    } catch (err) {
      // The next event tries again; the page keeps what it shows.
    }
  }, 1000);
}

function onEvent(msg) {
  if (msg.type === "alert.created") {
    showToast(msg);
  } else if (msg.type === "equity.updated") {
    state.events += 1;
    const entry = charts.get(String(msg.account));
    if (entry && entry.range) {
      const point = { time: Math.floor(msg.ts / 1000), value: Number(msg.equity) };
      const last = entry.points[entry.points.length - 1];
      if (!last || point.time > last.time) {
        entry.points.push(point);
        entry.series.update(point);
      }
    }
    scheduleRefresh();
  } else if (msg.type === "position.updated" && msg.open === false) {
    state.events += 1;
    scheduleRefresh();
  }
}

function connect(delay = 1000) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  window.tradesite?.setConnection("connecting");
  const ws = new WebSocket(`${scheme}://${location.host}/ws/markets/`);
  ws.addEventListener("open", () => {
    state.socket = "open";
    window.tradesite?.setConnection("live");
  });
  ws.addEventListener("message", (e) => {
    try { onEvent(JSON.parse(e.data)); } catch (err) { /* not ours */ }
  });
  ws.addEventListener("close", (e) => {
    state.socket = "closed";
    window.tradesite?.setConnection("down");
    if (e.code === 4401) return; // logged out
    setTimeout(() => connect(Math.min(delay * 2, 30000)), delay + Math.random() * 500);
  });
}

function start() {
  if (!window.LightweightCharts) { setTimeout(start, 50); return; }
  setUp();
  connect();
}
start();
