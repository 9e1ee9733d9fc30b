// The upload page: Uppy's Dashboard over tus (/api/tus/), resumable across
// reloads (GoldenRetriever), configured from the data- attributes of
// [data-uploader]. Without JavaScript the page's plain form is used instead.
"use strict";

(function () {
  const root = document.querySelector("[data-uploader]");
  if (!root || typeof window.Uppy === "undefined") return; // keep the plain form

  const data = root.dataset;
  const maxSize = Number(data.maxSize) || null;
  const chunkSize = Number(data.chunkSize) || 5 * 1024 * 1024;
  const parallelFrom = Number(data.parallelFrom) || 16 * 1024 * 1024;
  const parallelUploads = Number(data.parallelUploads) || 3;
  const allowedTypes = (data.allowedTypes || "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  const batchId = data.batchId || "";
  const resultsSection = document.querySelector("[data-upload-results-section]");
  const results = document.querySelector("[data-upload-results]");

  root.hidden = false;
  // With the uploader shown, the plain form becomes the fallback it is,
  // unless it was just sent and shows its errors.
  const simple = document.querySelector("[data-simple-upload]");
  if (simple && !simple.querySelector(".field-error, .form-errors")) simple.open = false;

  const uppy = new Uppy.Uppy({
    id: "doorito-upload",
    autoProceed: false,
    restrictions: {
      maxFileSize: maxSize,
      allowedFileTypes: allowedTypes.length ? allowedTypes : null,
    },
  });

  uppy.use(Uppy.Dashboard, {
    inline: true,
    target: "#uppy-dashboard",
    width: "100%",
    height: 420,
    proudlyDisplayPoweredByUppy: false,
    showProgressDetails: true,
    showRemoveButtonAfterComplete: false,
    note: maxSize ? `Up to ${document.querySelector("[data-limit=resumable]")?.textContent || ""} per file` : null,
  });

  uppy.use(Uppy.Tus, {
    endpoint: data.endpoint,
    chunkSize: chunkSize,
    // The session authenticates; CSRF protects the state-changing requests.
    headers: { "X-CSRFToken": data.csrfToken },
    // Only what the server records: name/type become filename/filetype.
    // "batch" is allowed per file (below): a listed field that a file lacks
    // would be sent as "undefined".
    allowedMetaFields: ["name", "type"],
    retryDelays: [0, 1000, 3000, 5000],
    // tus retries every 409 (offset mismatch); a closed or full batch is a
    // 409 too, and retrying cannot change that answer.
    onShouldRetry(error, retryAttempt, options, next) {
      if (["batch_closed", "batch_full"].includes(serverError(error)?.code)) return false;
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
  // reload keeps its batch even on a page opened without ?batch=). Large
  // files go up as parallel partial uploads that the server concatenates.
  uppy.on("file-added", (file) => {
    const tus = { ...(file.tus || {}) };
    if ((file.size || 0) >= parallelFrom) tus.parallelUploads = parallelUploads;
    if (batchId) {
      uppy.setFileMeta(file.id, { batch: batchId });
      tus.allowedMetaFields = ["name", "type", "batch"];
    }
    uppy.setFileState(file.id, { tus: tus });
  });

  // After a reload GoldenRetriever brings the files back; carry on without a click.
  // ("restore-confirmed" is what the Dashboard's own Resume button emits: it
  // resumes the interrupted uploads from their tus offsets.)
  uppy.on("restored", () => {
    // Files that failed before the reload wait for their Retry button.
    const pending = uppy.getFiles().filter((f) => !f.progress.uploadComplete && !f.error);
    if (pending.length && !pending.some((f) => f.isGhost)) {
      uppy.emit("restore-confirmed");
    }
  });

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
    const message = serverError(error, response)?.message;
    if (!message || !file || !uppy.getFile(file.id)) return;
    uppy.setFileState(file.id, { error: message });
    uppy.info(`${file.name}: ${message}`, "error", 8000);
  });

  uppy.on("upload-success", (file, response) => {
    const url = (response && response.uploadURL) || "";
    const uploadId = url.replace(/\/+$/, "").split("/").pop();
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.textContent = file.name;
    if (/^[0-9a-f-]{36}$/i.test(uploadId)) {
      link.href = data.resultUrl.replace("00000000-0000-0000-0000-000000000000", uploadId);
    } else {
      link.href = "/files/";
    }
    item.append(link);
    results.append(item);
    resultsSection.hidden = false;
  });
})();
