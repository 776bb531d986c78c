// Shared price chart (lightweight-charts v5, loaded as the global LightweightCharts):
// candlesticks, a volume histogram, server-computed indicator overlays and panes, markers with
// hover text, price lines. Used by the live chart page; the backtest page can reuse it.
//
// Data in: columnar JSON as /api/candles returns it: {t: [ms], o, h, l, c, v} and indicators
// {name: {line: {start, v: [...]}}}. Times are ms UTC everywhere outside the library.

const LWC = window.LightweightCharts;

export const COLORS = {
  up: "#26a69a", down: "#ef5350", text: "#d1d4dc", grid: "#2a2e39", bg: "#131722",
  bb: "#7e57c2", sma7: "#f6c343", sma20: "#42a5f5", sma60: "#ec407a", sma120: "#8d6e63",
  macd: "#42a5f5", signal: "#ff9800", rsi: "#ab47bc",
};

const sec = (ms) => Math.floor(ms / 1000);

// The page's theme (static/js/shell.js, the custom properties of static/css/site.css): a chart
// takes its background, text and grid from them, and again when the user switches theme.
function themeLayout() {
  const css = getComputedStyle(document.documentElement);
  const pick = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const grid = pick("--grid", COLORS.grid);
  return {
    layout: { background: { color: pick("--bg", COLORS.bg) }, textColor: pick("--text", COLORS.text) },
    grid: { vertLines: { color: grid }, horzLines: { color: grid } },
  };
}

function followTheme(chart) {
  document.addEventListener("tradesite:theme", () => chart.applyOptions(themeLayout()));
}

// Indicator lines: colour and pane per name ("price" draws over the candles).
const LINES = {
  bb: { pane: "price", lines: { upper: COLORS.bb, middle: COLORS.bb, lower: COLORS.bb } },
  sma7: { pane: "price", lines: { value: COLORS.sma7 } },
  sma20: { pane: "price", lines: { value: COLORS.sma20 } },
  sma60: { pane: "price", lines: { value: COLORS.sma60 } },
  sma120: { pane: "price", lines: { value: COLORS.sma120 } },
  macd: { pane: "macd", lines: { macd: COLORS.macd, signal: COLORS.signal, hist: null } },
  rsi: { pane: "rsi", lines: { value: COLORS.rsi } },
};
const PANES = ["macd", "rsi"];

export function floorMs(ms, tfMs) {
  return Math.floor(ms / tfMs) * tfMs; // epoch-aligned, as markets.timeframes.floor_ms
}

export const TIMEFRAME_MS = {
  "1m": 60e3, "3m": 180e3, "5m": 300e3, "15m": 900e3, "30m": 1800e3,
  "1h": 3600e3, "4h": 14400e3, "1d": 86400e3,
};

export class PriceChart {
  constructor(element, { height } = {}) {
    this.el = element;
    this.chart = LWC.createChart(element, {
      autoSize: true,
      height: height || undefined,
      ...themeLayout(),
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4 },
      crosshair: { mode: LWC.CrosshairMode.Normal },
    });
    followTheme(this.chart);
    this.candleSeries = this.chart.addSeries(LWC.CandlestickSeries, {
      upColor: COLORS.up, downColor: COLORS.down, borderVisible: false,
      wickUpColor: COLORS.up, wickDownColor: COLORS.down,
    });
    this.volumeSeries = this.chart.addSeries(LWC.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false,
    });
    this.volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.markerPlugin = LWC.createSeriesMarkers(this.candleSeries, []);
    this.bars = [];          // [{t, o, h, l, c, v}] oldest first, unique t
    this.index = new Map();  // t -> position in bars
    this.values = {};        // name -> line -> Map(t -> value|null)
    this.visible = new Set();
    this.indicatorSeries = []; // [{name, line, series}]
    this.markerList = [];    // [{t, position, shape, color, text, hover}]
    this.priceLines = [];
    this.tooltip = null;
    this.chart.subscribeCrosshairMove((p) => this._hover(p));
  }

  // -- data ------------------------------------------------------------------------------------

  static rows(cols) {
    const out = new Array(cols.t.length);
    for (let i = 0; i < cols.t.length; i++) {
      out[i] = { t: cols.t[i], o: cols.o[i], h: cols.h[i], l: cols.l[i], c: cols.c[i], v: cols.v[i] };
    }
    return out;
  }

  _storeIndicators(cols, indicators) {
    if (!indicators) return;
    for (const [name, lines] of Object.entries(indicators)) {
      const byLine = (this.values[name] ||= {});
      for (const [line, col] of Object.entries(lines)) {
        const map = (byLine[line] ||= new Map());
        for (let i = 0; i < col.v.length; i++) map.set(cols.t[col.start + i], col.v[i]);
      }
    }
  }

  // Replace everything (first paint, timeframe switch).
  setData(cols, indicators) {
    this.bars = PriceChart.rows(cols);
    this.values = {};
    this._storeIndicators(cols, indicators);
    this._reindex();
    this._redraw();
  }

  // Upsert candles by open time (older pages, missed bars after a reconnect, indicator refresh).
  merge(cols, indicators) {
    const rows = PriceChart.rows(cols);
    let appendOnly = true;
    for (const r of rows) {
      const at = this.index.get(r.t);
      if (at !== undefined) this.bars[at] = r;
      else {
        if (this.bars.length && r.t < this.bars[this.bars.length - 1].t) appendOnly = false;
        this.bars.push(r);
      }
    }
    if (!appendOnly) this.bars.sort((a, b) => a.t - b.t);
    this._storeIndicators(cols, indicators);
    this._reindex();
    this._redraw();
    return rows.length;
  }

  // A live bar (forming or closed): moves the last candle or appends one.
  update(bar) {
    const last = this.bars[this.bars.length - 1];
    if (last && bar.t < last.t) {
      // An older bar (a late close): keep it, redraw in order.
      this.merge({ t: [bar.t], o: [bar.o], h: [bar.h], l: [bar.l], c: [bar.c], v: [bar.v] });
      return;
    }
    const row = { t: bar.t, o: bar.o, h: bar.h, l: bar.l, c: bar.c, v: bar.v };
    if (last && last.t === bar.t) this.bars[this.bars.length - 1] = row;
    else { this.index.set(row.t, this.bars.length); this.bars.push(row); }
    this.candleSeries.update(this._candle(row));
    this.volumeSeries.update(this._volume(row));
    if (!last || last.t !== bar.t) this._drawMarkers();
  }

  _reindex() {
    this.index = new Map(this.bars.map((b, i) => [b.t, i]));
  }

  _candle(b) { return { time: sec(b.t), open: b.o, high: b.h, low: b.l, close: b.c }; }
  _volume(b) {
    return { time: sec(b.t), value: b.v, color: b.c >= b.o ? "rgba(38,166,154,0.5)" : "rgba(239,83,80,0.5)" };
  }

  _redraw() {
    this.candleSeries.setData(this.bars.map((b) => this._candle(b)));
    this.volumeSeries.setData(this.bars.map((b) => this._volume(b)));
    this._drawIndicators();
    this._drawMarkers();
  }

  first() { return this.bars[0]; }
  last() { return this.bars[this.bars.length - 1]; }

  // -- indicators ------------------------------------------------------------------------------

  setIndicator(name, on) {
    if (on) this.visible.add(name); else this.visible.delete(name);
    this._drawIndicators();
  }

  _lineData(map) {
    const out = [];
    for (const b of this.bars) {
      const v = map.get(b.t);
      if (v !== undefined && v !== null) out.push({ time: sec(b.t), value: v });
    }
    return out;
  }

  _drawIndicators() {
    for (const s of this.indicatorSeries) this.chart.removeSeries(s.series);
    this.indicatorSeries = [];
    const panes = PANES.filter((p) => [...this.visible].some((n) => LINES[n]?.pane === p));
    for (const name of Object.keys(LINES)) {
      if (!this.visible.has(name) || !this.values[name]) continue;
      const spec = LINES[name];
      const pane = spec.pane === "price" ? 0 : 1 + panes.indexOf(spec.pane);
      for (const [line, color] of Object.entries(spec.lines)) {
        const map = this.values[name][line];
        if (!map) continue;
        let series;
        if (color === null) {
          series = this.chart.addSeries(LWC.HistogramSeries, { lastValueVisible: false, priceLineVisible: false }, pane);
          series.setData(this._lineData(map).map((p) => ({ ...p, color: p.value >= 0 ? "rgba(38,166,154,0.6)" : "rgba(239,83,80,0.6)" })));
        } else {
          series = this.chart.addSeries(LWC.LineSeries, {
            color, lineWidth: line === "middle" ? 1 : 2, lastValueVisible: false,
            priceLineVisible: false, crosshairMarkerVisible: false,
          }, pane);
          series.setData(this._lineData(map));
        }
        this.indicatorSeries.push({ name, line, series });
      }
      if (name === "rsi") {
        for (const level of [30, 70]) {
          this.indicatorSeries.at(-1).series.createPriceLine({ price: level, color: "#555", lineStyle: 2, lineWidth: 1, axisLabelVisible: false });
        }
      }
    }
    this.chart.panes().forEach((p, i) => { if (i > 0) p.setHeight(110); });
  }

  // -- markers and price lines ----------------------------------------------------------------

  // markers: [{t (ms, any time inside the bar), kind: "buy"|"sell", label, hover}]
  setMarkers(markers, tfMs) {
    this.markerList = markers.map((m) => ({ ...m, bar: floorMs(m.t, tfMs) }));
    this._drawMarkers();
  }

  _drawMarkers() {
    const drawn = this.markerList
      .filter((m) => this.index.has(m.bar))
      .sort((a, b) => a.bar - b.bar)
      .map((m) => ({
        time: sec(m.bar),
        position: m.kind === "buy" ? "belowBar" : "aboveBar",
        shape: m.shape || (m.kind === "buy" ? "arrowUp" : "arrowDown"),
        color: m.kind === "buy" ? COLORS.up : COLORS.down,
        text: m.label,
      }));
    this.markerPlugin.setMarkers(drawn);
  }

  drawnMarkers() { return this.markerPlugin.markers(); }

  setPriceLines(lines) { // [{price, title, color}]
    for (const l of this.priceLines) this.candleSeries.removePriceLine(l);
    this.priceLines = lines.map((l) => this.candleSeries.createPriceLine({
      price: l.price, color: l.color, title: l.title, lineWidth: 1, lineStyle: 2, axisLabelVisible: true,
    }));
  }

  attachTooltip(element) { this.tooltip = element; }

  _hover(param) {
    if (!this.tooltip) return;
    if (!param || param.time === undefined || !param.point) { this.tooltip.hidden = true; return; }
    const t = param.time * 1000;
    const here = this.markerList.filter((m) => m.bar === t && m.hover);
    if (!here.length) { this.tooltip.hidden = true; return; }
    this.tooltip.textContent = here.map((m) => m.hover).join("\n");
    this.tooltip.style.left = `${Math.min(param.point.x + 12, this.el.clientWidth - 220)}px`;
    this.tooltip.style.top = `${param.point.y + 12}px`;
    this.tooltip.hidden = false;
  }

  onScrollLeft(callback, threshold = 20) {
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range && range.from < threshold) callback();
    });
  }
}

// A single line in its own chart (the backtest's equity curve). points: [[ms, value], ...]
// oldest first; points sharing a second keep the last value (the library needs unique times).
export class LineChart {
  constructor(element, { color = COLORS.sma20, height } = {}) {
    this.el = element;
    this.chart = LWC.createChart(element, {
      autoSize: true,
      height: height || undefined,
      ...themeLayout(),
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    followTheme(this.chart);
    this.series = this.chart.addSeries(LWC.LineSeries, { color, lineWidth: 2, priceLineVisible: false });
    this.points = [];
  }

  setData(points) {
    const out = [];
    for (const [ms, value] of points) {
      if (value === null || value === undefined || !Number.isFinite(value)) continue;
      const time = sec(ms);
      if (out.length && out[out.length - 1].time === time) out[out.length - 1].value = value;
      else out.push({ time, value });
    }
    this.points = out;
    this.series.setData(out);
    this.chart.timeScale().fitContent();
  }
}
