// The shell's own socket (templates/base.html) on pages that open none of their own (backtests,
// optimizer runs, screener, Telegram linking): the user's alerts as toasts (`/ws/alerts/`,
// one per notification id) and the header's connection indicator. Pages with a socket of
// their own (dashboard, markets, chart, alerts) show toasts from it and leave this out.
import { showToast } from "./toast.js";

let delay = 500;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  window.tradesite?.setConnection("connecting");
  const ws = new WebSocket(`${scheme}://${location.host}/ws/alerts/`);
  ws.onopen = () => { delay = 500; };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      window.tradesite?.setConnection("live");
      document.body.dataset.userSocket = "subscribed";
    } else if (msg.type === "alert.created") {
      showToast(msg);
    }
  };
  ws.onclose = (event) => {
    window.tradesite?.setConnection("down");
    document.body.dataset.userSocket = "closed";
    if (event.code === 4401) return; // logged out
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  };
}

connect();
