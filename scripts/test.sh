#!/usr/bin/env bash
# The test command: setup, PostgreSQL, lint, format check, migrations check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(scripts/bootstrap.sh | tail -n1)
export DJANGO_CONFIGURATION=Test
"$UV" run --frozen python scripts/ensure_db.py
"$UV" run --frozen ruff check .
"$UV" run --frozen ruff format --check .
"$UV" run --frozen python manage.py makemigrations --check --dry-run
"$UV" run --frozen pytest "$@"
