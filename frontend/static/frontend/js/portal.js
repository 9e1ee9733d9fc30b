// Shared behaviour of every portal page, wired by data- attributes (no inline
// scripts: the Content-Security-Policy allows only this origin's files).
"use strict";

(function () {
  // Copy buttons: the button keeps its name; what happened is written in its
  // status region ([data-copy-status], role="status"), which screen readers
  // announce, and cleared a moment later.
  const statusTimers = new WeakMap();

  function say(status, text) {
    if (!status) return;
    clearTimeout(statusTimers.get(status));
    status.textContent = text;
    statusTimers.set(status, setTimeout(() => { status.textContent = ""; }, 3000));
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const status = button.dataset.copyStatus ? document.querySelector(button.dataset.copyStatus) : null;
    const text = source.value !== undefined ? source.value : source.textContent;
    try {
      await navigator.clipboard.writeText(text.trim());
      say(status, "Copied");
    } catch (err) {
      // Clipboard refused (insecure origin): select the text so Ctrl+C works.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      say(status, "Press Ctrl+C to copy");
    }
  });
})();
