#!/usr/bin/env bash
# The run command: setup, PostgreSQL, migrations, then web + worker + beat.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(scripts/bootstrap.sh | tail -n1)
"$UV" run --frozen python scripts/ensure_db.py
"$UV" run --frozen python manage.py migrate --noinput
# WEB_PORT (Procfile.dev, default 8000) also names the port in webhook payload
# links when SITE_URL is not set (boot/settings.py, portal.storage.site_url).
# A real worker runs beside the web process, so the web process hands tasks to it.
export CELERY_TASK_ALWAYS_EAGER="${CELERY_TASK_ALWAYS_EAGER:-false}"
# Ctrl-C (or SIGTERM) stops the three cleanly and exits 0: scripts/procfile.py.
exec "$UV" run --frozen python scripts/procfile.py Procfile.dev
