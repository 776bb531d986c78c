// The live chart page: first paint from the embedded JSON, live bars and the user's events over
// one WebSocket, reconnect with backoff and refetch of missed candles (also on the server's
// "resync" frame, after it lost Redis), older candles on scroll.
import { PriceChart, TIMEFRAME_MS } from "./chart.js";
import { showToast } from "./toast.js";

const data = JSON.parse(document.getElementById("chart-data").textContent);
const $ = (id) => document.getElementById(id);
const state = {
  tf: data.timeframe, ws: null, wsSeq: 0, retry: 0, lastMessage: 0, connected: false,
  loadingOlder: false, exhausted: false, reconnects: 0, resyncs: 0, gapRetries: 0, badge: "connecting",
  signals: new Map(), fills: new Map(), positions: new Map(),
  // Bars may close between rendering the page and opening the socket: fetch them on open.
  needsGapFill: true,
};

const chart = new PriceChart($("chart"));
chart.attachTooltip($("tooltip"));

// -- helpers ----------------------------------------------------------------------------------

// Indicators to fetch with candles: those on screen and those already loaded.
function wantedIndicators() {
  return [...new Set([...chart.visible, ...Object.keys(chart.values)])].join(",");
}

function query(params) {
  const q = new URLSearchParams({ venue: data.venue, symbol: data.symbol, timeframe: state.tf, ...params });
  const names = params.indicators ?? wantedIndicators();
  if (names) q.set("indicators", names); else q.delete("indicators");
  return `${data.api}?${q}`;
}

// An overlay switched on for the first time: its values for the loaded candles.
async function loadIndicator(name) {
  const first = chart.first();
  if (!first || chart.values[name]) return;
  try {
    const body = await getJSON(query({ after: first.t, limit: Math.min(5000, chart.bars.length), indicators: name }));
    chart.merge(body.candles, body.indicators);
  } catch (err) {
    showError(`could not load ${name}: ${err.message}`);
  }
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function setBadge(name) {
  state.badge = name;
  const el = $("badge");
  el.className = `badge ${name}`;
  el.textContent = name;
  // The shell's indicator (static/js/shell.js): stale and closed count as down.
  window.tradesite?.setConnection(
    name === "live" ? "live" : name === "stale" || name === "closed" ? "down" : "connecting");
}

const fmt = (x) => (x >= 1000 ? x.toLocaleString(undefined, { maximumFractionDigits: 2 })
  : x.toPrecision(6).replace(/\.?0+$/, ""));

function showQuote() {
  const last = chart.last();
  if (!last) return;
  $("last-price").textContent = fmt(last.c);
  let ref = data.ref_24h;
  if (ref === null || ref === undefined) {
    const since = last.t - 86400e3;
    const first = chart.bars.find((b) => b.t >= since);
    ref = first ? first.o : null;
  }
  const el = $("change");
  if (ref) {
    const pct = (last.c / ref - 1) * 100;
    el.textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}% 24h`;
    el.className = `change ${pct >= 0 ? "up" : "down"}`;
  }
  document.title = `${fmt(last.c)} ${data.symbol} ${state.tf}`;
}

// -- markers and positions --------------------------------------------------------------------

const ACTION = {
  enter_long: ["buy", "L"], exit_long: ["sell", "xL"],
  enter_short: ["sell", "S"], exit_short: ["buy", "xS"],
};

function markers() {
  const out = [];
  for (const s of state.signals.values()) {
    const [kind, label] = ACTION[s.action] || ["buy", s.action];
    const reason = s.reason && Object.keys(s.reason).length ? JSON.stringify(s.reason) : "";
    out.push({ t: s.bar_time, kind, label, hover: `${s.config_name}: ${s.action} @ ${s.price}${reason ? `\n${reason}` : ""}` });
  }
  for (const f of state.fills.values()) {
    out.push({ t: f.ts, kind: f.side === "buy" ? "buy" : "sell", shape: "circle", label: `${f.side} ${f.quantity}`, hover: `fill ${f.side} ${f.quantity} @ ${f.price}` });
  }
  return out;
}

function drawMarkers() { chart.setMarkers(markers(), TIMEFRAME_MS[state.tf]); }

function drawPositions() {
  const lines = [];
  for (const p of state.positions.values()) {
    if (!p.open) continue;
    const owner = p.config_name || "manual";
    lines.push({ price: Number(p.entry_price), title: `${owner} ${p.side} entry`, color: "#90caf9" });
    if (p.stop_price) lines.push({ price: Number(p.stop_price), title: "stop", color: "#ef5350" });
    if (p.target_price) lines.push({ price: Number(p.target_price), title: "target", color: "#26a69a" });
  }
  chart.setPriceLines(lines);
  drawNet();
}

// Each account's net on the symbol: the sum of its configs' signed open quantities (what the
// venue holds), kept current from the positions as they are pushed.
function netByAccount() {
  const net = new Map();
  for (const p of state.positions.values()) {
    if (!p.open) continue;
    const q = Number(p.quantity) * (p.side === "long" ? 1 : -1);
    const row = net.get(p.account) || { quantity: 0, positions: 0 };
    row.quantity += q; row.positions += 1;
    net.set(p.account, row);
  }
  return net;
}

function drawNet() {
  const el = $("net-position");
  if (!el) return;
  const parts = [];
  for (const [account, row] of netByAccount()) {
    const side = row.quantity > 0 ? "long" : row.quantity < 0 ? "short" : "flat";
    const quantity = Number(Math.abs(row.quantity).toFixed(12));  // no float dust (0.1 + 0.2)
    parts.push(`account ${account}: net ${side} ${quantity} (${row.positions} position${row.positions === 1 ? "" : "s"})`);
  }
  el.textContent = parts.join(" · ");
}

// -- candles ---------------------------------------------------------------------------------

async function loadOlder() {
  if (state.loadingOlder || state.exhausted || !chart.first()) return;
  state.loadingOlder = true;
  try {
    const body = await getJSON(query({ before: chart.first().t, limit: 1000 }));
    if (body.candles.t.length === 0) state.exhausted = true;
    else chart.merge(body.candles, body.indicators);
  } catch (err) {
    showError(`could not load older candles: ${err.message}`);
  } finally {
    state.loadingOlder = false;
  }
}

// After a reconnect: every stored candle from the last one we have on (the stream stores
// closed candles before the wire forgets them), so the chart never shows a hole.
async function fillGap() {
  const last = chart.last();
  const body = await getJSON(last ? query({ after: last.t, limit: 5000 }) : query({ limit: 1000 }));
  if (body.candles.t.length) {
    chart.merge(body.candles, body.indicators);
    showQuote();
  }
}

// fillGap for the socket ``seq``, retried with backoff while that socket stays open: the
// fetch fails when the server is still starting or a connection is reset, and one failure
// must not leave a hole until the next reconnect. A socket that closes meanwhile has set
// needsGapFill again; its successor catches up.
async function catchUp(seq, attempt = 0) {
  try {
    await fillGap();
    if (attempt > 0) showError("");
  } catch (err) {
    if (seq !== state.wsSeq || !state.connected) return;
    showError(`could not fetch missed candles (retrying): ${err.message}`);
    state.gapRetries += 1;
    setTimeout(() => {
      if (seq === state.wsSeq && state.connected) catchUp(seq, attempt + 1);
    }, Math.min(10000, 500 * 2 ** attempt));
  }
}

// A closed bar: its indicator values are computed server-side once the stream has stored it.
function refreshIndicators(t, attempt = 0) {
  setTimeout(async () => {
    try {
      const body = await getJSON(query({ after: t, limit: 1 }));
      if (body.candles.t.length && body.candles.t[0] === t) chart.merge(body.candles, body.indicators);
      else if (attempt < 2) refreshIndicators(t, attempt + 1);
    } catch (err) { /* the next closed bar retries */ }
  }, 400 * (attempt + 1));
}

// -- WebSocket --------------------------------------------------------------------------------

function connect() {
  const seq = ++state.wsSeq;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${data.ws}${state.tf}/`);
  state.ws = ws;
  ws.onopen = async () => {
    if (seq !== state.wsSeq) return;
    state.connected = true;
    state.lastMessage = Date.now();
    setBadge("live");
    if (state.retry > 0) state.reconnects += 1;
    state.retry = 0;
    if (state.needsGapFill) {
      state.needsGapFill = false;
      await catchUp(seq);
    }
  };
  ws.onmessage = (event) => {
    if (seq !== state.wsSeq) return;
    state.lastMessage = Date.now();
    if (state.badge !== "live") setBadge("live");
    handle(JSON.parse(event.data));
  };
  ws.onclose = (event) => {
    if (seq !== state.wsSeq) return; // replaced on purpose (timeframe switch)
    state.connected = false;
    if (event.code === 4401 || event.code === 4404) {
      setBadge("closed");
      if (event.code === 4401) showError("Your session ended: log in again to see live data.");
      return;
    }
    setBadge("reconnecting");
    state.needsGapFill = true;
    const delay = Math.min(10000, 500 * 2 ** state.retry) * (0.75 + Math.random() * 0.5);
    state.retry += 1;
    setTimeout(() => { if (seq === state.wsSeq) connect(); }, delay);
  };
}

function handle(msg) {
  // Other parts of the page (the order ticket) follow the same socket.
  document.dispatchEvent(new CustomEvent("tradesite:message", { detail: msg }));
  switch (msg.type) {
    case "bar":
      chart.update(msg);
      showQuote();
      if (msg.closed) refreshIndicators(msg.t);
      break;
    case "signal.created":
      state.signals.set(msg.id, msg); drawMarkers(); break;
    case "fill.created":
      state.fills.set(msg.id, msg); drawMarkers(); break;
    case "position.updated":
      state.positions.set(msg.id, msg); drawPositions(); break;
    case "resync": // the server lost Redis for a while: what it published then never came
      state.resyncs += 1;
      catchUp(state.wsSeq);
      break;
    case "alert.created": // a notification of one of the user's alert rules
      showToast(msg); break;
    case "error":
      showError(msg.message); break;
    default: // hello, pong, order.updated, account.updated: nothing to draw
      break;
  }
}

// Ping so a quiet market is not mistaken for a dead connection.
setInterval(() => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "ping" }));
    if (Date.now() - state.lastMessage > 25000) setBadge("stale");
  }
}, 10000);

// -- controls ---------------------------------------------------------------------------------

async function switchTimeframe(tf) {
  if (tf === state.tf) return;
  state.tf = tf;
  document.querySelectorAll("#timeframes button").forEach((b) => b.classList.toggle("active", b.dataset.tf === tf));
  const url = new URL(location.href);
  url.searchParams.set("tf", tf);
  history.replaceState(null, "", url);
  state.wsSeq += 1; // the old socket's events are ignored from here on
  if (state.ws) state.ws.close(1000);
  state.exhausted = false;
  setBadge("connecting");
  try {
    const body = await getJSON(query({ limit: 1000 }));
    chart.setData(body.candles, body.indicators);
    chart.chart.timeScale().scrollToRealTime();
    drawMarkers();
    showQuote();
    showError("");
  } catch (err) {
    showError(`could not load ${tf} candles: ${err.message}`);
  }
  state.retry = 0;
  state.needsGapFill = true; // bars published while the candles loaded
  connect();
}

document.querySelectorAll("#timeframes button").forEach((b) => b.addEventListener("click", () => switchTimeframe(b.dataset.tf)));
$("symbol-picker").addEventListener("change", (e) => { location.href = `${e.target.value}?tf=${state.tf}`; });
document.querySelectorAll("#overlays input").forEach((box) => {
  box.addEventListener("change", async () => {
    const name = box.dataset.indicator;
    if (box.checked) await loadIndicator(name);
    chart.setIndicator(name, box.checked);
  });
});

// -- first paint -------------------------------------------------------------------------------

for (const s of data.signals) state.signals.set(s.id, s);
for (const f of data.fills) state.fills.set(f.id, f);
for (const p of data.positions) state.positions.set(p.id, p);
for (const name of data.overlays) chart.visible.add(name);
chart.setData(data.candles, data.indicators);
drawMarkers();
drawPositions();
showQuote();
chart.onScrollLeft(loadOlder);
connect();

// For tests and the console: a read-only view of what is drawn.
window.tradesiteChart = {
  timeframe: () => state.tf,
  badge: () => state.badge,
  reconnects: () => state.reconnects,
  gapRetries: () => state.gapRetries,
  resyncs: () => state.resyncs,
  bars: () => chart.bars.map((b) => ({ ...b })),
  markers: () => chart.drawnMarkers(),
  indicators: () => [...chart.visible],
  lines: () => chart.priceLines.map((l) => l.options()),
  loadOlder,
};
