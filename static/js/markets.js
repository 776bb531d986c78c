// Markets overview: last price, 24h change and an hourly sparkline per symbol, live tickers.
import { showToast } from "./toast.js";

const data = JSON.parse(document.getElementById("markets-data").textContent);
const rows = new Map();
let badge = "connecting";
let retry = 0;

const fmt = (x) => (x >= 1000 ? x.toLocaleString(undefined, { maximumFractionDigits: 2 })
  : x.toPrecision(6).replace(/\.?0+$/, ""));

function setBadge(name) {
  badge = name;
  const el = document.getElementById("badge");
  el.className = `badge ${name}`;
  el.textContent = name;
  // The shell's indicator (static/js/shell.js): stale and closed count as down.
  window.tradesite?.setConnection(
    name === "live" ? "live" : name === "stale" || name === "closed" ? "down" : "connecting");
}

function sparkline(canvas, values, up) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (values.length < 2) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  ctx.strokeStyle = up ? "#26a69a" : "#ef5350";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * (canvas.width - 2) + 1;
    const y = canvas.height - 1 - ((v - lo) / span) * (canvas.height - 2);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function render(row) {
  const tr = row.el;
  tr.querySelector(".last").textContent = row.last === null ? "-" : fmt(row.last);
  const change = tr.querySelector(".change");
  if (row.last !== null && row.ref) {
    const pct = (row.last / row.ref - 1) * 100;
    change.textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
    change.className = `num change ${pct >= 0 ? "up" : "down"}`;
  }
  const spark = row.last !== null && row.spark.length ? [...row.spark.slice(0, -1), row.last] : row.spark;
  sparkline(tr.querySelector(".spark"), spark, row.ref ? (row.last ?? row.ref) >= row.ref : true);
}

for (const venue of data.venues) {
  for (const s of venue.symbols) {
    const key = `${s.venue}:${s.symbol}`;
    const el = document.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (!el) continue;
    const row = { ...s, el };
    rows.set(key, row);
    render(row);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/markets/`);
  ws.onopen = () => { retry = 0; setBadge("live"); };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "ticker") {
      const row = rows.get(`${msg.venue}:${msg.symbol}`);
      if (row) { row.last = msg.price; render(row); }
    } else if (msg.type === "alert.created") {
      showToast(msg);
    } else if (msg.type === "error") {
      setBadge("closed");
    }
  };
  ws.onclose = (event) => {
    if (event.code === 4401) { setBadge("closed"); return; }
    setBadge("reconnecting");
    const delay = Math.min(10000, 500 * 2 ** retry) * (0.75 + Math.random() * 0.5);
    retry += 1;
    setTimeout(connect, delay);
  };
}
connect();

window.tradesiteMarkets = {
  badge: () => badge,
  price: (key) => rows.get(key)?.last ?? null,
};
