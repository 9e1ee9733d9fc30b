.PHONY: run test lint format bench-webhooks stop-db

run:  ## web + worker + beat against PostgreSQL (found or started)
	bash scripts/run.sh

test:  ## lint, format check, migrations check, the whole test suite
	bash scripts/test.sh $(PYTEST_ARGS)

format:
	uv run ruff format . && uv run ruff check --fix .

stop-db:  ## stop the project-local PostgreSQL cluster, if one was started
	uv run python scripts/ensure_db.py stop
