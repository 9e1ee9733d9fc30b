// Shared behaviour of every portal page, wired by data- attributes (no inline
// scripts: the Content-Security-Policy allows only this origin's files).
"use strict";

(function () {
  // The pages write times in the reader's zone: tell the server the
  // browser's (frontend.middleware.BrowserTimeZoneMiddleware reads it; until
  // it has, times are in UTC and the footer says so). Kept for a year, and
  // set again when the browser's zone changes (a trip).
  const TIME_ZONE_COOKIE = "doorito_tz";
  try {
    // IANA names ("America/Argentina/Buenos_Aires") are valid cookie values as they are.
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const sent = document.cookie.split("; ").includes(`${TIME_ZONE_COOKIE}=${zone}`);
    if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && !sent) {
      const secure = location.protocol === "https:" ? "; secure" : "";
      document.cookie = `${TIME_ZONE_COOKIE}=${zone}; path=/; max-age=31536000; samesite=lax${secure}`;
    }
  } catch (e) {
    // No Intl time zone: the pages stay in UTC, as they say.
  }

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
