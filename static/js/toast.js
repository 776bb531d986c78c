// Alert toasts: `alert.created` frames from the user socket (alerts.delivery). One toast per
// notification id (a resent frame after a worker restart is not shown twice); text only.
const shown = new Set();

function container() {
  let box = document.getElementById("toasts");
  if (!box) {
    box = document.createElement("div");
    box.id = "toasts";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    document.body.appendChild(box);
  }
  return box;
}

export function showToast(msg, { timeoutMs = 10000 } = {}) {
  const key = String(msg.id);
  if (shown.has(key)) return null;
  shown.add(key);
  const toast = document.createElement("div");
  toast.className = `toast toast-${msg.level === "error" ? "error" : "info"}`;
  toast.dataset.alertId = key;
  const title = document.createElement("strong");
  title.textContent = msg.title || "Alert";
  const body = document.createElement("p");
  body.textContent = msg.body || "";
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => toast.remove());
  toast.append(close, title, body);
  container().appendChild(toast);
  if (timeoutMs > 0) setTimeout(() => toast.remove(), timeoutMs);
  return toast;
}
