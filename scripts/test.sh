#!/usr/bin/env bash
# The test command: setup, PostgreSQL, lint, format check, type check, import
# contracts, migrations check, tests (in parallel: pytest-xdist, TEST_WORKERS).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(scripts/bootstrap.sh | tail -n1)
export DJANGO_CONFIGURATION=Test
# The UI tests drive Debian's Chromium (Playwright cannot download its own
# here). Install it when missing and we may; without it they skip, or fail
# under CI=true (frontend/tests/browser.py).
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing chromium (Debian package) for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[test] could not install chromium; browser tests will skip (or fail under CI=true)" >&2
fi
# The scanning tests start Debian's clamd on a private socket with a signature
# database of their own (scripts/private_clamd.py); installed the same way.
if ! command -v clamd >/dev/null && [ ! -x /usr/sbin/clamd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing clamav-daemon (Debian package) for the scanning tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon clamdscan >/dev/null) \
    || echo "[test] could not install clamav-daemon; scanning tests will skip (or fail under CI=true)" >&2
fi
"$UV" run --frozen python scripts/ensure_db.py
"$UV" run --frozen ruff check .
"$UV" run --frozen ruff format --check .
# mypy takes ~40 s on a cold cache (a fresh clone): it runs beside the rest,
# and its verdict fails the run at the end.
mypy_log=$(mktemp)
"$UV" run --frozen mypy . >"$mypy_log" 2>&1 &
mypy_pid=$!
"$UV" run --frozen lint-imports --no-cache
"$UV" run --frozen python manage.py makemigrations --check --dry-run
# The project's own bytecode too (PYTHONDONTWRITEBYTECODE keeps Python from
# caching it, and the tests start a few hundred Python processes).
"$UV" run --frozen python -m compileall -q -j 0 accounts api boot broker common frontend monitoring portal web scripts tests conftest.py manage.py >/dev/null
# Each xdist worker has its own test database (test_doorito_gw0, …) and SQL
# broker; tests marked `processes` run in two serial lanes (xdist groups,
# conftest.py). Arguments given last win: `make test PYTEST_ARGS="-n 0"`.
status=0
"$UV" run --frozen pytest -n "${TEST_WORKERS:-4}" --dist loadgroup "$@" || status=$?
if wait "$mypy_pid"; then
  tail -n 1 "$mypy_log"
else
  cat "$mypy_log"
  echo "[test] mypy failed" >&2
  status=1
fi
rm -f "$mypy_log"
exit "$status"
