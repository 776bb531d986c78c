// The backtest detail page: polls the run's JSON status every second until it finishes (then
// reloads to show the results), or draws the finished run: candles with the trades as markers
// (the shared PriceChart) and the equity curve (LineChart).
import { LineChart, PriceChart, TIMEFRAME_MS } from "./chart.js";

const $ = (id) => document.getElementById(id);
const status = JSON.parse($("backtest-status").textContent);
const state = { status: status.status, polls: 0, chart: null, equity: null };

window.tradesiteBacktest = {
  status: () => state.status,
  polls: () => state.polls,
  bars: () => (state.chart ? state.chart.bars.length : 0),
  markers: () => (state.chart ? state.chart.drawnMarkers() : []),
  equityPoints: () => (state.equity ? state.equity.points.length : 0),
};

async function poll() {
  const url = $("status-line").dataset.url;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      state.polls += 1;
      state.status = body.status;
      $("status").textContent = body.status[0].toUpperCase() + body.status.slice(1);
      const bar = $("progress");
      if (bar) bar.value = body.progress;
      const stage = $("stage");
      if (stage) stage.textContent = body.stage || "";
      if (body.finished) { window.location.reload(); return; }
    } catch (err) {
      const box = $("error");
      box.textContent = `Could not read the run's status (${err.message}); retrying.`;
      box.hidden = false;
    }
  }
}

function draw() {
  const data = JSON.parse($("backtest-chart").textContent);
  const chart = new PriceChart($("chart"));
  chart.attachTooltip($("tooltip"));
  chart.setData(data.candles);
  chart.setMarkers(data.markers, TIMEFRAME_MS[data.timeframe]);
  chart.chart.timeScale().fitContent();
  state.chart = chart;
  const equity = new LineChart($("equity"));
  equity.setData(data.equity);
  state.equity = equity;
}

if (!status.finished) poll();
else if ($("backtest-chart")) draw();
