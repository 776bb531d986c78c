// The shell (templates/base.html): theme, the phone menu and the live connection indicator.
// A classic script in <head>: it sets the theme before the body paints; the rest waits for the
// DOM. Pages report their WebSocket's state through window.tradesite.setConnection().
(() => {
  const KEY = "tradesite.theme";
  const root = document.documentElement;
  const dark = window.matchMedia("(prefers-color-scheme: dark)");

  function stored() {
    try { return localStorage.getItem(KEY); } catch { return null; }
  }
  function theme() {
    const chosen = stored();
    if (chosen === "dark" || chosen === "light") return chosen;
    return dark.matches ? "dark" : "light";
  }
  function apply(name) {
    root.dataset.theme = name;
    document.dispatchEvent(new CustomEvent("tradesite:theme", { detail: name }));
  }
  apply(theme());
  dark.addEventListener("change", () => { if (!stored()) apply(theme()); });

  // live: the socket is open; connecting: opening or reopening it; down: closed or silent.
  const LABELS = { live: "live", connecting: "connecting", down: "offline" };
  let connection = null;

  function setConnection(state) {
    if (!(state in LABELS)) throw new Error(`unknown connection state: ${state}`);
    connection = state;
    const el = document.getElementById("connection");
    if (!el) return;
    el.hidden = false;
    el.className = `conn ${state}`;
    el.textContent = LABELS[state];
  }

  window.tradesite = {
    theme: () => root.dataset.theme,
    setTheme(name) {
      try { localStorage.setItem(KEY, name); } catch { /* private mode: this page only */ }
      apply(name);
    },
    connection: () => connection,
    setConnection,
  };

  document.addEventListener("DOMContentLoaded", () => {
    if (connection) setConnection(connection);
    document.getElementById("theme-toggle")?.addEventListener("click", () => {
      window.tradesite.setTheme(root.dataset.theme === "dark" ? "light" : "dark");
    });
    const toggle = document.getElementById("nav-toggle");
    toggle?.addEventListener("click", () => {
      const open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  });
})();
