// The order ticket (templates/_order_ticket.html) on the chart and the dashboard. Every order
// and close goes through the JSON API (POST /api/orders, POST /api/positions/<id>/close), so the
// services' gates decide; their message is shown next to the ticket. Live accounts confirm in
// a dialog first; paper accounts send at once.
const data = JSON.parse(document.getElementById("order-ticket-data").textContent);
const root = document.getElementById("order-ticket");
const $ = (id) => document.getElementById(id);
const form = $("ticket-form");
const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
const state = { busy: false, positions: [], sent: 0 };

const account = () => data.accounts.find((a) => String(a.id) === $("ticket-account").value);
const symbolKey = () => data.fixed_symbol || `${account().venue}:${$("ticket-symbol").value}`;
const symbol = () => data.symbols[symbolKey()];
const rule = () => account().rules[symbol().code];
const side = () => form.elements.side.value;
const type = () => form.elements.type.value;
const sizeBy = () => $("ticket-size-by").value;
const num = (text) => (text && /^\s*\d*\.?\d+\s*$/.test(text) ? Number(text) : null);
const fmt = (x) => Number(x).toLocaleString(undefined, { maximumFractionDigits: 8 });

function fillSymbols() {
  const select = $("ticket-symbol");
  const keep = select.value;
  select.replaceChildren(...account().symbols.map((code) => new Option(code, code)));
  if (account().symbols.includes(keep)) select.value = keep;
}

// What a market buy may be sized by on this venue (quote amount only for a market buy).
function draw() {
  const s = symbol();
  const r = rule();
  const marketBuy = type() === "market" && side() === "buy";
  const quoteOk = marketBuy && r.by_quote;
  const quantityOk = !marketBuy || r.by_quantity;
  const sizeSelect = $("ticket-size-by");
  sizeSelect.options[0].disabled = !quantityOk;
  sizeSelect.options[1].disabled = !quoteOk;
  if (sizeSelect.selectedOptions[0].disabled) sizeSelect.value = quantityOk ? "quantity" : "quote_amount";
  sizeSelect.options[0].textContent = `${s.base} quantity`;
  sizeSelect.options[1].textContent = `${s.quote} to spend`;
  $("ticket-amount-label").textContent = sizeBy() === "quantity" ? `Quantity (${s.base})` : `Amount (${s.quote})`;
  $("ticket-price-field").hidden = type() !== "limit";
  const minimum = Number(s.min_notional) ? ` · minimum order ${fmt(s.min_notional)} ${s.quote}` : "";
  const futures = s.perpetual ? " · a manual order opens at 1x and may not open against a config's position" : "";
  $("ticket-rule").textContent = `${r.text}${minimum}${futures}`;
  const button = $("ticket-submit");
  button.textContent = `${side() === "buy" ? "Buy" : "Sell"} ${s.base}${account().mode === "live" ? " (live)" : ""}`;
  button.className = `ticket-submit ${side()}`;
  const est = estimate();
  $("ticket-estimate").textContent = est === null ? (s.last_price ? `last price ${fmt(s.last_price)} ${s.quote}` : `no price known for ${s.code} yet`)
    : `estimated value ${fmt(est)} ${s.quote}${type() === "market" ? ` at the last price ${fmt(s.last_price)}` : ""}`;
}

function estimate() {
  const amount = num($("ticket-amount").value);
  if (amount === null) return null;
  if (sizeBy() === "quote_amount") return amount;
  const price = type() === "limit" ? num($("ticket-price").value) : num(symbol().last_price);
  return price === null ? null : amount * price;
}

function request() {
  const body = { account: account().id, symbol: symbolKey(), side: side() };
  body[sizeBy()] = $("ticket-amount").value.trim();
  if (type() === "limit") body.price = $("ticket-price").value.trim();
  return body;
}

function show(kind, text) {
  const el = $("ticket-result");
  el.className = `ticket-result ${kind}`;
  el.textContent = text;
  el.hidden = false;
  root.dataset.result = kind;
}

// A live account: the trader sees what will be sent and says yes, else nothing is sent.
function askToConfirm(rows) {
  const dialog = $("ticket-confirm");
  $("ticket-summary").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  return new Promise((resolve) => {
    const done = (answer) => () => {
      $("ticket-confirm-send").onclick = $("ticket-confirm-cancel").onclick = dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    $("ticket-confirm-send").onclick = done(true);
    $("ticket-confirm-cancel").onclick = done(false);
    dialog.oncancel = done(false); // Esc
    dialog.showModal();
  });
}

async function post(url, body) {
  state.busy = true;
  root.dataset.busy = "1";
  state.sent += 1;
  try {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    });
    let payload = {};
    try { payload = await response.json(); } catch { /* not JSON: the status says it */ }
    return { status: response.status, payload };
  } finally {
    state.busy = false;
    delete root.dataset.busy;
  }
}

const PLACED = { new: "saved, not sent yet", submitted: "sent, awaiting the venue", open: "open at the venue", partially_filled: "partly filled" };

function describe(order, verb) {
  const s = symbol();
  const what = `${order.side} ${fmt(order.quantity)} ${s.base}${order.order_type === "limit" ? ` limit at ${fmt(order.price)}` : ""}`;
  if (order.status === "filled") {
    return ["filled", `${verb} filled: ${order.side === "buy" ? "bought" : "sold"} ${fmt(order.filled_quantity)} ${s.base} at ${fmt(order.average_price)} ${s.quote} (order ${order.id})`];
  }
  if (order.status === "rejected") return ["rejected", `Rejected: ${order.reject_reason}`];
  return ["placed", `${verb} placed: ${what}, ${PLACED[order.status] || order.status} (order ${order.id})`];
}

function report({ status, payload }, verb) {
  if (payload.order) {
    const [kind, text] = describe(payload.order, verb);
    show(kind, text);
  } else {
    show("rejected", `Refused: ${payload.error || `the server answered ${status}`}`);
  }
  refreshPositions();
  refreshTables();
  root.dispatchEvent(new CustomEvent("order-ticket:result", { bubbles: true, detail: payload }));
}

async function submit(event) {
  event.preventDefault();
  if (state.busy) return;
  const body = request();
  if (account().mode === "live") {
    const est = estimate();
    const size = body.quote_amount ? `${fmt(body.quote_amount)} ${symbol().quote} to spend` : `${body.quantity} ${symbol().base}`;
    const ok = await askToConfirm([
      ["Side", `${body.side} (${type()}${body.price ? ` at ${body.price}` : ""})`],
      ["Size", size], ["Symbol", body.symbol],
      ["Estimated value", est === null ? "unknown" : `${fmt(est)} ${symbol().quote}`],
      ["Account", `${account().label} (live, ${account().venue_name})`],
    ]);
    if (!ok) { show("cancelled", "Not sent: you cancelled the confirmation."); return; }
  }
  try {
    report(await post(data.api.place, body), "Order");
  } catch (err) {
    show("rejected", `Could not reach the server: ${err.message}; nothing is known to be sent`);
  }
}

async function closePosition(position) {
  if (state.busy) return;
  if (account().mode === "live") {
    const ok = await askToConfirm([
      ["Close", `${position.config_name} ${position.side} ${position.quantity} ${symbol().base}`],
      ["Symbol", position.symbol], ["Order", `reduce-only market ${position.side === "long" ? "sell" : "buy"}`],
      ["Estimated value", symbol().last_price ? `${fmt(Number(position.quantity) * Number(symbol().last_price))} ${symbol().quote}` : "unknown"],
      ["Account", `${account().label} (live, ${account().venue_name})`],
    ]);
    if (!ok) { show("cancelled", "Not sent: you cancelled the confirmation."); return; }
  }
  try {
    report(await post(data.api.close.replace("{id}", position.id), {}), "Close");
  } catch (err) {
    show("rejected", `Could not reach the server: ${err.message}; nothing is known to be sent`);
  }
}

function drawPositions() {
  const list = $("ticket-positions");
  $("ticket-positions-scope").textContent = `${account().label}, ${symbolKey()}`;
  const mine = state.positions.filter((p) => p.account === account().id && p.symbol === symbolKey() && p.open);
  if (!mine.length) {
    const li = document.createElement("li"); li.className = "ticket-note"; li.textContent = "none";
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...mine.map((p) => {
    const li = document.createElement("li");
    li.dataset.position = p.id;
    const text = document.createElement("span");
    const leverage = p.leverage > 1 ? ` ${p.leverage}x` : "";
    text.textContent = `${p.config_name}: ${p.side}${leverage} ${fmt(p.quantity)} @ ${fmt(p.entry_price)}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ticket-close";
    button.textContent = "Close position";
    button.addEventListener("click", () => closePosition(p));
    li.append(text, button);
    return li;
  }));
}

async function refreshPositions() {
  try {
    const response = await fetch(data.api.positions, { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    state.positions = body.positions;
    drawPositions();
  } catch (err) {
    $("ticket-positions").textContent = `could not load positions: ${err.message}`;
  }
}

// Pages whose tables are server-rendered (the dashboard): swap in the fresh ones.
async function refreshTables() {
  const ids = (root.dataset.refresh || "").split(" ").filter((id) => id && document.getElementById(id));
  if (!ids.length) return;
  try {
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ids) {
      const next = fresh.getElementById(id);
      if (next) document.getElementById(id).replaceWith(document.adoptNode(next));
    }
  } catch { /* the next action or a reload shows them */ }
}

// The chart's socket (static/js/chart-page.js re-dispatches each frame): positions change and
// the price moves while the page is open.
document.addEventListener("tradesite:message", ({ detail: msg }) => {
  if (msg.type === "position.updated") {
    const at = state.positions.findIndex((p) => p.id === msg.id);
    if (at >= 0) state.positions[at] = msg; else state.positions.push(msg);
    drawPositions();
  } else if (msg.type === "bar" && data.fixed_symbol && msg.c !== undefined) {
    symbol().last_price = String(msg.c);
    draw();
  }
});

$("ticket-account").addEventListener("change", () => { fillSymbols(); draw(); drawPositions(); });
$("ticket-symbol").addEventListener("change", () => { draw(); drawPositions(); });
form.addEventListener("input", draw);
form.addEventListener("change", draw);
form.addEventListener("submit", submit);
fillSymbols();
draw();
refreshPositions();

// For tests and the console.
window.tradesiteTicket = { busy: () => state.busy, sent: () => state.sent, refreshPositions };
