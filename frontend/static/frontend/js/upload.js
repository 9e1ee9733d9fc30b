// The upload page: Uppy's Dashboard over tus (/api/tus/), resumable across
// reloads (GoldenRetriever), configured from the data- attributes of
// [data-uploader]. Without JavaScript the page's plain form is used instead.
//
// One tus upload per file, in large chunks (data-chunk-size; docs/tus.md,
// "Browser"). The last step is made safe here: a file whose last request was
// in flight when the page was reloaded, closed or paused may already be
// stored, may still be turning into its file, or may have been refused; tus's
// HEAD answers "every byte is here" for the first two and gives no reason for
// the third (410, a HEAD has no body). So before a restored
// file resumes, and before a finished one is listed, the page asks the server
// (data-status-url) what became of that upload, and shows exactly that.
//
// The same script runs an upload request's public page: there the browser
// has no account, and tus is authorised by the request's credential
// (data-request-token, sent as Upload-Request-Token); finished files are
// listed without links, and when every file is in the page sends itself
// (data-finish-form).
"use strict";

(function () {
  const root = document.querySelector("[data-uploader]");
  if (!root || typeof window.Uppy === "undefined") return; // keep the plain form

  const data = root.dataset;
  const ZERO_ID = "00000000-0000-0000-0000-000000000000";
  const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  // This tab's finished uploads, kept across reloads (sessionStorage ends
  // with the tab) for a day, the files' default lifetime.
  const uppyId = data.uppyId || "doorito-upload";
  const RESULTS_KEY = `${uppyId}-results`;
  const RESULTS_KEPT_MS = 24 * 60 * 60 * 1000;
  const maxSize = Number(data.maxSize) || null;
  const chunkSize = Number(data.chunkSize) || 50 * 1024 * 1024;
  const allowedTypes = (data.allowedTypes || "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  const batchId = data.batchId || "";
  const maxFiles = Number(data.maxFiles) || null;
  // Refusals that are final for this file: a Retry starts a new upload.
  const FINAL_REFUSALS = [
    "unsupported_media_type",
    "payload_too_large",
    "batch_closed",
    "batch_full",
    "upload_request_closed",
    "upload_request_max_files",
    "upload_request_max_bytes",
    "upload_request_type",
    "submission_finished",
  ];
  const resultsSection = document.querySelector("[data-upload-results-section]");
  const results = document.querySelector("[data-upload-results]");

  root.hidden = false;
  // With the uploader shown, the plain form becomes the fallback it is,
  // unless it was just sent and shows its errors.
  const simple = document.querySelector("[data-simple-upload]");
  if (simple && !simple.querySelector(".field-error, .form-errors")) simple.open = false;

  const uppy = new Uppy.Uppy({
    id: uppyId,
    autoProceed: false,
    restrictions: {
      maxFileSize: maxSize,
      maxNumberOfFiles: maxFiles,
      allowedFileTypes: allowedTypes.length ? allowedTypes : null,
    },
  });

  uppy.use(Uppy.Dashboard, {
    inline: true,
    target: "#uppy-dashboard",
    width: "100%",
    height: 420,
    proudlyDisplayPoweredByUppy: false,
    // Bytes and time left are shown below the Dashboard (progressLine, at
    // the end): Uppy's own estimate was wrong at the start and after a reload.
    showProgressDetails: false,
    hideProgressDetails: true,
    showRemoveButtonAfterComplete: false,
    // The page writes the limit in the portal's units (data-max-size-label);
    // it used to be read from the upload page's Limits box, which an upload
    // request's page does not have, and the note read "Up to  per file".
    note: maxSize && data.maxSizeLabel ? `Up to ${data.maxSizeLabel} per file` : null,
  });

  uppy.use(Uppy.Tus, {
    endpoint: data.endpoint,
    chunkSize: chunkSize,
    // The session authenticates; CSRF protects the state-changing requests.
    // On an upload request's page its credential does (no cookie, no CSRF).
    headers: data.requestToken
      ? { "Upload-Request-Token": data.requestToken }
      : { "X-CSRFToken": data.csrfToken },
    // Only what the server records: name/type become filename/filetype.
    // "batch" is allowed per file (below): a listed field that a file lacks
    // would be sent as "undefined".
    allowedMetaFields: ["name", "type"],
    retryDelays: [0, 1000, 3000, 5000],
    // tus retries every 409 (offset mismatch); a closed or full batch is a
    // 409 too, and retrying cannot change that answer.
    onShouldRetry(error, retryAttempt, options, next) {
      if (FINAL_REFUSALS.includes(serverError(error)?.code)) return false;
      return next(error);
    },
    removeFingerprintOnSuccess: true,
  });

  // Browsers keep the files' bytes in IndexedDB for the resume after a reload
  // (Uppy's default stops at 10 MiB). Larger ones come back as "ghosts" the
  // Dashboard asks to add again; tus then resumes them from the server's offset.
  uppy.use(Uppy.GoldenRetriever, {
    serviceWorker: false,
    indexedDB: { maxFileSize: 512 * 1024 * 1024, maxTotalSize: 1024 * 1024 * 1024 },
  });

  // Per-file tus options (kept with the file, so a file restored after a
  // reload keeps its batch even on a page opened without ?batch=).
  uppy.on("file-added", (file) => {
    if (!batchId) return;
    uppy.setFileMeta(file.id, { batch: batchId });
    uppy.setFileState(file.id, {
      tus: { ...(file.tus || {}), allowedMetaFields: ["name", "type", "batch"] },
    });
  });

  // The keep time chosen when the upload starts goes with each file as the
  // tus metadata "ttl_hours" (empty: the server's default). A file that
  // already has an upload on the server keeps the keep time it started with.
  const keepTime = document.querySelector("[data-keep-time]");
  uppy.addPreProcessor((fileIDs) => {
    const hours = keepTime ? keepTime.value : "";
    for (const id of fileIDs) {
      const file = uppy.getFile(id);
      if (!file || file.tus?.uploadUrl) continue;
      const fields = (file.tus?.allowedMetaFields || ["name", "type"]).filter((f) => f !== "ttl_hours");
      if (hours) fields.push("ttl_hours");
      uppy.setFileMeta(id, { ttl_hours: hours });
      uppy.setFileState(id, { tus: { ...(file.tus || {}), allowedMetaFields: fields } });
    }
    return Promise.resolve();
  });

  // --- what the server says became of an upload -------------------------------

  function uploadIdOf(url) {
    const id = String(url || "").replace(/\/+$/, "").split("/").pop();
    return UPLOAD_ID.test(id) ? id : null;
  }

  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Of an upload URL, or of a bare upload id:
  // {state: "stored", file_url} | {state: "failed", message} | {state:
  // "receiving" | "deleted" | "gone" | ...}, or null when there is nothing to
  // ask about. While another request is still turning the bytes into the file
  // ("finishing") it asks again; an outage or a dropped connection is asked
  // through the same way.
  async function serverState(uploadUrl) {
    const id = uploadIdOf(uploadUrl);
    if (!id) return null;
    const url = data.statusUrl.replace(ZERO_ID, id);
    for (let attempt = 0; attempt < 120; attempt += 1) {
      if (attempt) await wait(Math.min(5000, 250 * 2 ** attempt));
      let answer;
      try {
        answer = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      } catch (e) {
        continue; // offline for a moment: ask again
      }
      if (answer.status >= 500) continue; // the database is restarting: ask again
      if (!answer.ok || answer.redirected) return null; // not ours, or signed out
      let state;
      try {
        state = await answer.json();
      } catch (e) {
        return null;
      }
      if (state.state !== "finishing") return state;
    }
    return null;
  }

  // An upload that ended without a file: a Retry must start a new one (which
  // the server judges afresh), not ask about the old one again.
  function forgetUpload(fileId) {
    const file = uppy.getFile(fileId);
    const url = file?.tus?.uploadUrl || file?.response?.uploadURL;
    uppy.setFileState(fileId, { tus: { ...(file?.tus || {}), uploadUrl: null } });
    try {
      for (let i = localStorage.length - 1; i >= 0; i -= 1) {
        const key = localStorage.key(i);
        if (!key || !key.startsWith("tus::")) continue;
        const entry = JSON.parse(localStorage.getItem(key) || "null");
        if (entry && entry.uploadUrl === url) localStorage.removeItem(key);
      }
    } catch (e) {
      // no storage: nothing was kept there either
    }
  }

  function showRefusal(fileId, message) {
    const file = uppy.getFile(fileId);
    if (!file) return;
    forgetUpload(fileId);
    const error = message || "The server did not store this file.";
    uppy.setFileState(fileId, {
      error,
      progress: { ...file.progress, uploadComplete: false, complete: false },
    });
    // As Uppy does for an upload that fails: the status bar offers Retry.
    uppy.setState({ error });
    uppy.info(`${file.name}: ${error}`, "error", 8000);
  }

  // --- the list of finished files ------------------------------------------------

  function savedResults() {
    try {
      const kept = JSON.parse(sessionStorage.getItem(RESULTS_KEY) || "[]");
      return kept.filter((e) => e && UPLOAD_ID.test(e.uploadId || "") && Date.now() - e.at < RESULTS_KEPT_MS);
    } catch (e) {
      return [];
    }
  }

  // The upload ids are checked against UPLOAD_ID before they get here.
  const listed = (uploadId) => results.querySelector(`[data-upload-id="${uploadId}"]`);

  function showResult(entry) {
    if (!entry || !entry.name) return;
    let item = listed(entry.uploadId);
    if (!item) {
      item = document.createElement("li");
      item.dataset.uploadId = entry.uploadId;
      item.append(document.createElement("a"));
      results.append(item);
    } else if (!item.querySelector("a")) {
      return; // listed already, as text
    }
    const link = item.querySelector("a");
    link.textContent = entry.name;
    if (!data.resultUrl) {
      link.replaceWith(document.createTextNode(entry.name)); // a sender sees no files
      resultsSection.hidden = false;
      return;
    }
    // Until the server has named the file, its upload's page redirects to it.
    link.href = entry.fileUrl || data.resultUrl.replace(ZERO_ID, entry.uploadId);
    resultsSection.hidden = false;
  }

  function saveResults(list) {
    try {
      sessionStorage.setItem(RESULTS_KEY, JSON.stringify(list.slice(-100)));
    } catch (e) {
      // no storage: the list lasts as long as the page
    }
  }

  function keepResult(entry) {
    showResult(entry);
    saveResults([...savedResults().filter((e) => e.uploadId !== entry.uploadId), entry]);
  }

  function dropResult(uploadId) {
    listed(uploadId)?.remove();
    resultsSection.hidden = !results.children.length;
    saveResults(savedResults().filter((e) => e.uploadId !== uploadId));
  }

  // A listed upload the server has not yet named a file for: ask what became
  // of it and show that (its file's link, or nothing when it was refused or
  // deleted since).
  async function confirmResult(entry, fileId) {
    const state = await serverState(entry.uploadId);
    if (state && state.state === "failed") {
      dropResult(entry.uploadId);
      if (fileId && uppy.getFile(fileId)) showRefusal(fileId, state.message);
    } else if (state && state.state === "deleted") {
      dropResult(entry.uploadId); // uploaded, and deleted since: no link to follow
    } else if (state && state.file_url) {
      keepResult({ ...entry, fileUrl: state.file_url, at: Date.now() });
    }
  }

  // A reload right after an upload's last answer can come before its check
  // did: those entries are checked again now.
  savedResults().forEach((entry) => {
    showResult(entry);
    if (!entry.fileUrl) confirmResult(entry, null);
  });

  // A file counts as uploaded when the server says it is stored. The last
  // PATCH answers only then; a resumed upload whose HEAD found every byte in
  // (its last PATCH's answer was lost) may still be finishing, or refused.
  uppy.on("upload-success", (file, response) => {
    const uploadId = uploadIdOf((response && response.uploadURL) || "");
    if (!file || !uploadId) return;
    // Listed at once (a reload a moment later still shows it), then checked.
    const entry = { uploadId, name: file.name, fileUrl: "", at: Date.now() };
    keepResult(entry);
    confirmResult(entry, file.id);
  });

  // --- after a reload or a closed tab ------------------------------------------------

  // GoldenRetriever brings the files back. Each one that had started is
  // settled with the server first: stored → done (even if its bytes were not
  // kept, a "ghost"), refused → the server's message; the others resume from
  // the server's offset without a click. ("restore-confirmed" is what the
  // Dashboard's own Resume button emits.)
  uppy.on("restored", async () => {
    const started = uppy.getFiles().filter((f) => !f.progress.uploadComplete && f.tus?.uploadUrl);
    if (started.length) {
      // A finishing upload can take a while (a large file on S3): say so.
      uppy.info("Checking with the server what became of your uploads…", "info", 120000);
      await Promise.all(started.map(settleRestored));
      uppy.hideInfo(); // the oldest message: this one, not a refusal shown since
    }
    // Files that failed wait for their Retry button.
    const pending = uppy.getFiles().filter((f) => !f.progress.uploadComplete && !f.error);
    if (pending.length && !pending.some((f) => f.isGhost)) {
      uppy.emit("restore-confirmed");
    } else if (!pending.length) {
      // Nothing left to resume (and nothing running yet): drop the restored
      // uploads, so the status bar shows the outcome (done, or Retry) rather
      // than "resume" or an upload in progress. Resuming them would clear
      // the files' errors and send refused files again.
      uppy.setState({ recoveredState: null, currentUploads: {} });
    }
  });

  async function settleRestored(restored) {
    const uploadUrl = restored.tus.uploadUrl;
    const state = await serverState(uploadUrl);
    const file = uppy.getFile(restored.id);
    if (!state || !file) return;
    if (state.state === "stored" || state.state === "deleted") {
      uppy.setFileState(file.id, { error: null, isGhost: false });
      uppy.emit("upload-success", uppy.getFile(file.id), { uploadURL: uploadUrl, status: 200 });
    } else if (state.state === "failed") {
      showRefusal(file.id, state.message);
    } else if (state.state === "receiving" && file.error) {
      // Its error was the connection going away (the reload itself): the
      // server still takes bytes, so it resumes with the others.
      uppy.setFileState(file.id, { error: null });
    }
  }

  // The server's own error (JSON {"error": {"code", "message"}}), so a file
  // shows "This batch has ended…" instead of tus's "unexpected response…".
  function serverError(error, response) {
    const bodies = [];
    const original = error && error.originalResponse;
    if (original && typeof original.getBody === "function") bodies.push(original.getBody());
    if (response && response.body) bodies.push(response.body);
    for (const body of bodies) {
      try {
        const parsed = typeof body === "string" ? JSON.parse(body) : body;
        if (parsed && parsed.error && parsed.error.message) return parsed.error;
      } catch (e) {
        // not JSON: try the next one
      }
    }
    return null;
  }

  uppy.on("upload-error", (file, error, response) => {
    const refusal = serverError(error, response);
    if (!refusal || !refusal.message || !file || !uppy.getFile(file.id)) return;
    // A refused file (type, size, an ended batch) is over on the server: its
    // Retry starts a new upload.
    if (FINAL_REFUSALS.includes(refusal.code)) {
      forgetUpload(file.id);
    }
    uppy.setFileState(file.id, { error: refusal.message });
    uppy.info(`${file.name}: ${refusal.message}`, "error", 8000);
  });

  // --- the keyboard stays in the upload area ----------------------------------------

  // Choosing files replaces the Dashboard's "browse files" button with the
  // file list: the focused button is gone, focus falls to the page, and the
  // next Tab went on to the batch form. When focus was in the upload area,
  // it goes to the Upload button, which is what comes next.
  let focusInUploader = false;
  document.addEventListener("focusin", (event) => {
    focusInUploader = root.contains(event.target);
  });
  uppy.on("files-added", () => {
    if (!focusInUploader) return;
    let frames = 0;
    const settle = () => {
      const upload = root.querySelector(".uppy-StatusBar-actionBtn--upload");
      const lost = !document.activeElement || document.activeElement === document.body;
      if (upload && lost) upload.focus();
      else if (frames++ < 30) requestAnimationFrame(settle); // until the Dashboard has drawn
    };
    requestAnimationFrame(settle);
  });

  // --- sizes in the portal's units ------------------------------------------------

  // Uppy divides by 1024 but labels the result "MB" ("5 MB" for 5 MiB); the
  // portal writes IEC units everywhere (common/sizes.py). The numbers are
  // right, so only the labels are put right, in whatever Uppy renders.
  const DECIMAL_LABEL = /(\d) ([KMGTPEZY])B\b/g;
  function relabelSizes(node) {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.data.replace(DECIMAL_LABEL, "$1 $2iB");
      if (text !== node.data) node.data = text;
      return;
    }
    const texts = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    while (texts.nextNode()) relabelSizes(texts.currentNode);
  }
  const dashboard = document.getElementById("uppy-dashboard");
  relabelSizes(dashboard);
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === "characterData") relabelSizes(change.target);
      else change.addedNodes.forEach(relabelSizes);
    }
  }).observe(dashboard, { subtree: true, childList: true, characterData: true });

  // --- bytes sent and time left (eta.js) ---------------------------------------------

  const progressLine = document.createElement("p");
  progressLine.className = "upload-eta muted";
  progressLine.dataset.uploadEta = "";
  progressLine.hidden = true;
  document.querySelector("#uppy-dashboard").after(progressLine);
  const eta = window.DooritoEta ? window.DooritoEta.create() : null;

  function iec(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
  }

  // The files of the uploads under way that are still sending.
  function sending() {
    const ids = new Set();
    Object.values(uppy.getState().currentUploads || {}).forEach((u) => (u.fileIDs || []).forEach((id) => ids.add(id)));
    return [...ids].map((id) => uppy.getFile(id)).filter((f) => f && !f.error && !f.isPaused && !f.progress.uploadComplete);
  }

  function showProgress() {
    const files = sending();
    const total = files.reduce((sum, f) => sum + (f.size || f.progress.bytesTotal || 0), 0);
    if (!files.length || !total) {
      progressLine.hidden = true;
      return;
    }
    const done = files.reduce((sum, f) => sum + (f.progress.bytesUploaded || 0), 0);
    const seconds = eta ? eta.secondsLeft(total - done, performance.now()) : null;
    progressLine.textContent = `${iec(done)} of ${iec(total)} sent${seconds === null ? "" : ` · ${window.DooritoEta.format(seconds)}`}`;
    progressLine.hidden = false;
  }

  if (eta) {
    uppy.on("upload-progress", (file, progress) => {
      if (file && progress) eta.progress(file.id, progress.bytesUploaded || 0, performance.now());
    });
    ["upload", "pause-all", "resume-all", "upload-pause", "upload-retry", "retry-all", "restored", "restore-confirmed", "cancel-all"].forEach((name) =>
      uppy.on(name, () => eta.reset()),
    );
  }
  setInterval(showProgress, 1000);
  uppy.on("complete", showProgress);

  // An upload request's page: when every file of this round is stored, the
  // sender's files are sent (the owner is told); with a failure the sender
  // decides, with Retry or the page's own "I'm done" button.
  const finishForm = data.finishForm ? document.querySelector(data.finishForm) : null;
  if (finishForm) {
    uppy.on("complete", (result) => {
      if (!result || result.failed.length || !result.successful.length) return;
      if (uppy.getFiles().some((f) => !f.progress.uploadComplete || f.error)) return;
      // The status checks of upload-success run first; then the page moves on.
      setTimeout(() => {
        uppy.clear();
        try {
          sessionStorage.removeItem(RESULTS_KEY);
        } catch (e) {
          // nothing kept
        }
        finishForm.submit();
      }, 500);
    });
  }
})();
