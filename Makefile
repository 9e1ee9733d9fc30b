.PHONY: run test manage format stop-db vendor screenshots

# scripts/bootstrap.sh installs uv when missing and prints the one to use
# (its own messages and uv's go to stderr).
UV = $$(bash scripts/bootstrap.sh | tail -n1)

run:  ## web + worker + beat against PostgreSQL (found or started)
	bash scripts/run.sh

test:  ## lint, format check, type check, migrations check, the whole test suite
	bash scripts/test.sh $(PYTEST_ARGS)

# Not echoed, and uv stays quiet: stdout is the command's own output, so
# TOKEN=$(make manage ARGS="create_token me@example.com ci") captures the token.
# (Inside another make's recipe, add --no-print-directory: make 4.3 prints
# "Entering directory" lines on stdout in sub-makes whatever this file says.)
# Tasks go to the worker, as in `make run` (scripts/run.sh): Dev's eager
# default would run them in this command's process, and `status` could not
# ping the worker running beside it.
manage:  ## any manage.py command: make manage ARGS="create_user me@example.com --staff"
	@CELERY_TASK_ALWAYS_EAGER="$${CELERY_TASK_ALWAYS_EAGER:-false}" \
		$(UV) run --frozen --quiet python manage.py $(ARGS)

format:
	$(UV) run --frozen ruff format . && $(UV) run --frozen ruff check --fix .

stop-db:  ## stop the project-local PostgreSQL cluster, if one was started
	@$(UV) run --frozen --quiet python scripts/ensure_db.py stop

vendor:  ## refresh the vendored front-end assets from npm (needs npm; see scripts/vendor_assets.py)
	python3 scripts/vendor_assets.py

screenshots:  ## re-take the portal screenshots in docs/img with the browser tests
	DOORITO_SCREENSHOTS_DIR=$(CURDIR)/docs/img bash scripts/test.sh frontend/tests -k browser
