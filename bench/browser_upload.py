"""The portal's upload page against the browser's own ceiling, same Chromium, same file.

Starts, against a private PostgreSQL cluster, the documented production web
command (``gunicorn -c deploy/gunicorn.conf.py boot.wsgi``,
``DJANGO_CONFIGURATION=Production``, local storage) and, under the same
gunicorn configuration, ``bench/tus_drain_app.py`` (tus that throws the
bytes away: no Django, no storage, no hashing). Then, in interleaved rounds,
with one file of random bytes (500 MB by default):

- **ceiling**: Chromium (Playwright, the Debian package) on the drain app's
  page, uploading the file with the vendored Uppy bundle in 50 MiB chunks,
  and with plain ``fetch`` PATCHes of 50 MiB; the better median of the two
  is the ceiling;
- **portal**: the same Chromium, signed in, on Doorito's ``/upload/`` page,
  adding the file in Uppy's Dashboard and clicking Upload, as a person does
  (the page's own chunk size and GoldenRetriever included); the stored
  file's sha256 is checked every round. The same page is also pointed at the
  drain (its tus endpoint swapped while it loads): what the page itself
  costs, apart from the server;
- **tuspy**: the stock Python client into Doorito and into the drain, with
  the page's chunk size (beside the browser figures only: a browser cannot
  be judged against it).

Browser times come from the page's Resource Timing entries: from the start
of the tus creation ``POST`` to the end of the response to the last ``PATCH``
(which Doorito sends once the file is stored). Prints each path's median
MB/s and the portal's ratio to the ceiling (target >= 0.7).

Memory: on this VM the first use of a guest memory page is several times
slower than its reuse, so a server writing 500 MB into memory it never used
before is slowed by the VM, not by its code. The bench first touches and
frees three times the file's size of page cache (as ``bench/upload.py``
does) and deletes each stored file again (through the API) after its
round, so Doorito writes into reused memory, as a long-running server does.
``--keep-files`` keeps them instead: every round then writes fresh memory.

    .venv/bin/python bench/browser_upload.py                  # 500 MB, 5 rounds
    .venv/bin/python bench/browser_upload.py --size-mb 200 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from gunicorn_server import ProductionServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster  # noqa: E402

MIB = 1024 * 1024
CEILING_CHUNK = 50 * MIB  # the chunk size the issue measured the ceiling with
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update"]
# The portal page pointed at the drain (another port of 127.0.0.1) is a
# cross-origin request to the loopback address space, which Chromium would
# otherwise ask the user to permit.
CHROMIUM_ARGS += ["--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"]
PRODUCTION = ["-c", "deploy/gunicorn.conf.py"]  # as in docs/operations.md
EMAIL = "browser-bench@example.com"
PASSWORD = "browser-bench-password-1"  # a throwaway cluster's user

# Start of the creation POST to the end of the last PATCH's response, from
# the page's own Resource Timing entries (XHR for Uppy, fetch for the rest).
ELAPSED_JS = """(path) => {
  const entries = performance.getEntriesByType("resource").filter(
    (e) => new URL(e.name).pathname.startsWith(path));
  if (!entries.length) return null;
  const start = Math.min(...entries.map((e) => e.startTime));
  const end = Math.max(...entries.map((e) => e.responseEnd));
  return { ms: end - start, requests: entries.length };
}"""


def say(msg: str) -> None:
    print(msg, flush=True)


def make_file(path: Path, size: int) -> str:
    """Random bytes (no two MiB alike, incompressible) and their sha256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as fh:
        for i in range(0, size, MIB):
            chunk = (i.to_bytes(8, "big") + block[8:])[: size - i]
            fh.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


class Browser:
    """One Chromium for the whole run; a fresh profile (context) per upload."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.chromium = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        self.portal_cookies: list = []

    def close(self) -> None:
        self.chromium.close()
        self._playwright.stop()

    def _context(self, base_url: str, cookies: list | None = None):
        context = self.chromium.new_context(base_url=base_url)
        context.set_default_timeout(600_000)
        if cookies:
            context.add_cookies(cookies)
        return context

    def drain(self, url: str, path: Path, how: str) -> tuple[float, int]:
        """Seconds for the drain page to upload ``path`` with Uppy or fetch; requests sent."""
        context = self._context(url)
        try:
            page = context.new_page()
            page.goto("/")
            page.locator("#file").set_input_files(str(path))
            function = "uploadWithUppy" if how == "uppy" else "uploadWithFetch"
            page.evaluate(f"(chunk) => window.{function}(chunk)", CEILING_CHUNK)
            timing = page.evaluate(ELAPSED_JS, "/files/")
        finally:
            context.close()
        return timing["ms"] / 1000, timing["requests"]

    def sign_in(self, url: str) -> None:
        context = self._context(url)
        try:
            page = context.new_page()
            page.goto("/login/")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/")
            self.portal_cookies = context.cookies()
        finally:
            context.close()

    def portal(
        self, url: str, path: Path, *, endpoint: str | None = None
    ) -> tuple[float, int, dict[str, str]]:
        """Seconds for ``/upload/`` to upload ``path`` as a person does it; requests; settings.

        With ``endpoint``, the page's tus endpoint is replaced by it while the
        page loads (a route on the page's HTML only, removed before the upload:
        an intercepted upload would be timed through Playwright).
        """
        context = self._context(url, self.portal_cookies)
        try:
            page = context.new_page()
            if endpoint:
                origin = endpoint.split("/files/")[0]

                def retarget(route) -> None:
                    # The endpoint, and the page's Content-Security-Policy,
                    # which lets it connect to its own origin only.
                    answer = route.fetch()
                    html = answer.text().replace(
                        'data-endpoint="/api/tus/"', f'data-endpoint="{endpoint}"'
                    )
                    headers = dict(answer.headers)
                    csp = headers.get("content-security-policy", "")
                    headers["content-security-policy"] = csp.replace(
                        "connect-src 'self'", f"connect-src 'self' {origin}"
                    )
                    route.fulfill(response=answer, body=html, headers=headers)

                page.route("**/upload/", retarget)
            page.goto("/upload/")
            page.wait_for_selector(".uppy-Dashboard")
            page.unroute_all()
            settings = page.locator("[data-uploader]").evaluate("(el) => ({...el.dataset})")
            page.locator("input.uppy-Dashboard-input").first.set_input_files(str(path))
            page.locator(".uppy-StatusBar-actionBtn--upload").click()
            page.wait_for_selector(
                ".uppy-StatusBar.is-complete, .uppy-StatusBar.is-error", timeout=600_000
            )
            if page.locator(".uppy-StatusBar.is-error").count():
                shown = page.locator(".uppy-Dashboard-Item.is-error").first.inner_text()
                raise RuntimeError(f"the portal page reported an upload error: {shown}")
            timing = page.evaluate(ELAPSED_JS, "/files/" if endpoint else "/api/tus/")
        finally:
            context.close()
        return timing["ms"] / 1000, timing["requests"], settings


def tuspy_seconds(endpoint: str, path: Path, chunk: int, headers: dict[str, str]) -> float:
    from tusclient import client

    uploader = client.TusClient(endpoint, headers=headers).uploader(
        str(path), chunk_size=chunk, metadata={"filename": path.name}
    )
    started = time.perf_counter()
    uploader.upload()
    return time.perf_counter() - started


def last_stored(database_url: str) -> tuple[str, str]:
    """The id and sha256 of the file stored last."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id, sha256 FROM portal_uploadfile WHERE status = 'stored' "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    return (str(row[0]), row[1]) if row else ("", "")


def warm_page_cache(folder: Path, size: int) -> None:
    """Touch (write, then delete) ``size`` bytes of page cache, as bench/upload.py does.

    On this VM the first use of a guest memory page is several times slower
    than its reuse; without this, whichever upload first wrote that much
    would pay for it. For the same reason each stored file is deleted again
    after its round (through the API), so the server always writes into
    reused memory, as a long-running one does.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "warm.bin"
    block = os.urandom(8 * MIB)
    with scratch.open("wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
    scratch.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="file size in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--keep-files", action="store_true", help="keep each stored file (fresh memory per round)"
    )
    args = parser.parse_args()
    size = args.size_mb * 1000 * 1000

    cluster = PrivateCluster(dbname="doorito_browserbench")
    servers: list[ProductionServer] = []
    browser = None
    work = Path(tempfile.mkdtemp(prefix="browser-bench-", dir=ROOT / ".data"))
    try:
        source = work / "upload.bin"
        say(f"making a {args.size_mb} MB file of random bytes in {work}")
        expected = make_file(source, size)
        cluster.start()
        env = production_env(
            cluster.url,
            work / "media",
            SECRET_KEY=secrets.token_urlsafe(50),
            STATIC_ROOT=str(work / "static"),
        )
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        subprocess.run(
            [sys.executable, "manage.py", "create_user", EMAIL, "--password-stdin"],
            cwd=ROOT, env=env, input=PASSWORD, text=True, check=True, capture_output=True,
        )  # fmt: skip
        token = manage(env, "create_token", EMAIL, "bench").strip().splitlines()[-1]
        doorito = ProductionServer(env, work / "web.log")
        servers.append(doorito)
        drain = ProductionServer(env, work / "drain.log", app="bench.tus_drain_app:app", ready="/")
        servers.append(drain)
        say(
            f"servers: gunicorn {' '.join(PRODUCTION)} boot.wsgi and bench.tus_drain_app:app "
            f"({os.cpu_count()} cores, WEB_CONCURRENCY="
            f"{os.environ.get('WEB_CONCURRENCY', 'default')}); PostgreSQL on port {cluster.port}"
        )
        source.read_bytes()  # into the page cache before any timing
        if not args.keep_files:
            warm_page_cache(work / "media", 3 * size)

        browser = Browser()
        browser.sign_in(doorito.url)
        tus_headers = {"Authorization": f"Bearer {token}"}
        times: dict[str, list[float]] = {}
        notes: dict[str, str] = {}
        page_chunk = CEILING_CHUNK

        def run(name: str, measure: Callable[[], float]) -> None:
            seconds = measure()
            times.setdefault(name, []).append(seconds)
            say(f"  {name:32} {size / seconds / 1e6:7.1f} MB/s  ({seconds:.2f} s)")

        def portal() -> float:
            nonlocal page_chunk
            seconds, requests, settings = browser.portal(doorito.url, source)
            file_id, stored = last_stored(cluster.url)
            if stored != expected:
                raise RuntimeError(f"stored sha256 {stored} is not the file's {expected}")
            delete_file(file_id)
            page_chunk = int(settings.get("chunkSize") or page_chunk)
            parallel = (
                f"parallel uploads from {int(settings['parallelFrom']) / MIB:g} MiB"
                if settings.get("parallelFrom")
                else "one tus upload per file"
            )
            notes["portal page"] = (
                f"{page_chunk / MIB:g} MiB chunks, {parallel}, {requests} tus requests, "
                "stored sha256 checked every round"
            )
            return seconds

        def delete_file(file_id: str) -> None:
            if args.keep_files:
                return
            answer = httpx.delete(f"{doorito.url}/api/files/{file_id}", headers=tus_headers)
            answer.raise_for_status()

        def tuspy_into_doorito() -> float:
            seconds = tuspy_seconds(doorito.url + "/api/tus/", source, page_chunk, tus_headers)
            file_id, stored = last_stored(cluster.url)
            if stored != expected:
                raise RuntimeError(f"stored sha256 {stored} is not the file's {expected}")
            delete_file(file_id)
            return seconds

        def portal_into_drain() -> float:
            return browser.portal(doorito.url, source, endpoint=drain.url + "/files/")[0]

        def drain_page(how: str) -> Callable[[], float]:
            def measure() -> float:
                seconds, requests = browser.drain(drain.url, source, how)
                chunks = f"{CEILING_CHUNK // MIB} MiB chunks"
                notes[f"drain page, {how}"] = f"{chunks}, {requests} requests"
                return seconds

            return measure

        for number in range(1, args.rounds + 1):
            say(f"round {number}/{args.rounds}")
            run("ceiling: Uppy -> drain", drain_page("uppy"))
            run("ceiling: fetch -> drain", drain_page("fetch"))
            run("portal page -> Doorito", portal)
            run("portal page -> drain", portal_into_drain)
            run("tuspy -> Doorito", tuspy_into_doorito)
            run(
                "tuspy -> drain",
                lambda: tuspy_seconds(drain.url + "/files/", source, page_chunk, {}),
            )

        say("")
        say(f"{args.size_mb} MB, median of {args.rounds} rounds (MB/s):")
        medians = {name: size / statistics.median(t) / 1e6 for name, t in times.items()}
        ceiling = max(medians["ceiling: Uppy -> drain"], medians["ceiling: fetch -> drain"])
        for name, mbps in medians.items():
            say(f"  {name:32} {mbps:7.1f}  {mbps / ceiling:5.2f}x the ceiling")
        for name, note in notes.items():
            say(f"  ({name}: {note})")
        ratio = medians["portal page -> Doorito"] / ceiling
        verdict = "met" if ratio >= 0.7 else "NOT met"
        say(f"portal page / browser ceiling: {ratio:.2f}x (target >= 0.7x: {verdict})")
    finally:
        # Each step on its own: an interrupted browser must not leave the servers.
        with contextlib.suppress(Exception):
            if browser is not None:
                browser.close()
        for server in servers:
            server.stop()
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
