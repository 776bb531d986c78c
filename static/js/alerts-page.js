// The alerts page: a socket on the user's own group (`/ws/alerts/`) shows each new
// notification as a toast (one per notification id) and reconnects with backoff.
import { showToast } from "./toast.js";

const root = document.getElementById("alerts-page");
let delay = 500;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${root.dataset.ws}`);
  ws.onopen = () => {
    delay = 500;
    root.dataset.socket = "open";
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") root.dataset.socket = "subscribed";
    if (msg.type === "alert.created") showToast(msg);
  };
  ws.onclose = (event) => {
    root.dataset.socket = "closed";
    if (event.code === 4401) return; // logged out
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  };
}

if (root) connect();
