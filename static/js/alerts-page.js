// The alerts page: a socket on the user's own group (`/ws/alerts/`) shows each new
// notification as a toast (one per notification id), drives the shell's connection indicator
// and reconnects with backoff.
import { showToast } from "./toast.js";

const root = document.getElementById("alerts-page");
let delay = 500;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  window.tradesite?.setConnection("connecting");
  const ws = new WebSocket(`${scheme}://${location.host}${root.dataset.ws}`);
  ws.onopen = () => {
    delay = 500;
    root.dataset.socket = "open";
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      root.dataset.socket = "subscribed";
      window.tradesite?.setConnection("live");
    }
    if (msg.type === "alert.created") showToast(msg);
  };
  ws.onclose = (event) => {
    root.dataset.socket = "closed";
    window.tradesite?.setConnection("down");
    if (event.code === 4401) return; // logged out
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  };
}

if (root) connect();
