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

  // A table wider than its box scrolls sideways inside .table-wrap (on a
  // phone). The keyboard can scroll it only once it has focus: while it
  // overflows, the box is a focusable region named after the table's section.
  function markScrollable(wrap) {
    if (wrap.scrollWidth > wrap.clientWidth) {
      if (wrap.hasAttribute("tabindex")) return;
      const named = wrap.closest("[aria-labelledby]");
      const heading = named && document.getElementById(named.getAttribute("aria-labelledby"));
      const title = heading || document.querySelector("h1");
      const name = title ? title.textContent.trim() : "Table";
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", `${name} (scrolls sideways)`);
    } else if (wrap.hasAttribute("tabindex")) {
      wrap.removeAttribute("tabindex");
      wrap.removeAttribute("role");
      wrap.removeAttribute("aria-label");
    }
  }

  const tableWraps = new ResizeObserver((entries) => {
    for (const entry of entries) markScrollable(entry.target);
  });
  for (const wrap of document.querySelectorAll(".table-wrap")) tableWraps.observe(wrap);
})();
