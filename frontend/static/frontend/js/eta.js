// The upload page's "time left" (used by upload.js; kept apart so the rules
// can be tried in a browser on their own).
//
// Uppy's status bar estimated it from the bytes of the first progress report
// over the time since the upload started (the tus POST, the first PATCH's
// wait): "21h 55m left" in a 7-second upload. After a reload it counted the
// bytes sent before the reload as just sent: "0s left" while the page was
// still asking the server what became of the upload. Here:
//
// - only bytes moved from this page count: a file's first report after the
//   page loaded, resumed or was paused is a baseline (it carries the server's
//   offset), not a transfer;
// - the rate is the bytes of the last WINDOW_MS over that time (a moving
//   window: a burst or a pause a minute ago no longer counts);
// - there is no estimate before MIN_SPAN_MS of sending, after STALL_MS
//   without a byte, or when nothing is left to send (the server is making
//   the file): no number rather than a wrong one.
"use strict";

window.DooritoEta = (function () {
  const WINDOW_MS = 5000;
  const MIN_SPAN_MS = 2000;
  const STALL_MS = 3000;

  function create() {
    let samples = []; // [time, bytes sent from this page so far]
    let sent = 0;
    let lastProgressAt = null;
    const seen = new Map(); // file id -> its bytesUploaded at its last report

    return {
      // One file's progress report (Uppy's "upload-progress"), ``now`` in ms.
      progress(fileId, bytesUploaded, now) {
        const before = seen.get(fileId);
        seen.set(fileId, bytesUploaded);
        if (before === undefined || !(bytesUploaded > before)) return;
        sent += bytesUploaded - before;
        lastProgressAt = now;
        samples.push([now, sent]);
        while (samples.length > 2 && now - samples[1][0] >= WINDOW_MS) samples.shift();
      },
      // Paused, resumed, retried or restored: the next reports start afresh.
      reset() {
        seen.clear();
        samples = [];
        lastProgressAt = null;
      },
      // Seconds until ``remaining`` more bytes are sent, or null when no
      // estimate means anything yet.
      secondsLeft(remaining, now) {
        if (!(remaining > 0) || lastProgressAt === null || samples.length < 2) return null;
        if (now - lastProgressAt > STALL_MS) return null;
        const [since, sentThen] = samples[0];
        const span = now - since;
        if (span < MIN_SPAN_MS) return null;
        const perMs = (sent - sentThen) / span;
        if (!(perMs > 0)) return null;
        return remaining / perMs / 1000;
      },
    };
  }

  // "about 15 s left", "about 4 min left", "about 2 h 5 min left".
  function format(seconds) {
    if (seconds < 60) return `about ${Math.max(5, Math.ceil(seconds / 5) * 5)} s left`;
    if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.round((seconds % 3600) / 60);
    return `about ${hours} h${minutes ? ` ${minutes} min` : ""} left`;
  }

  return { create, format, WINDOW_MS, MIN_SPAN_MS, STALL_MS };
})();
