// The dashboard: forms with data-confirm ask before they submit (the kill switch). A static
// file rather than an onsubmit attribute: the Content-Security-Policy allows no inline script.
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
