"""What the docs tell people to run or to expect holds up when taken literally."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from conftest import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SCRIPTS = sorted([*(ROOT / "scripts").glob("*.sh"), ROOT / "Makefile"])
# `rm … "$VAR"/…` or `rm … $VAR/…`: with VAR unset or empty the path starts at /.
UNGUARDED_RM = re.compile(r"\brm\b[^\n`]*?\"?\$\{?[A-Za-z_][A-Za-z0-9_]*\}?\"?/")


@pytest.mark.parametrize("path", DOCS + SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_rm_of_a_path_built_from_a_variable_that_may_be_unset(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in UNGUARDED_RM.finditer(line):
            # ${VAR:?} stops the shell instead of expanding to nothing.
            assert ":?" in match.group(0), f"{path.name}:{number}: {line.strip()}"


def test_the_file_payload_sample_is_stored_after_it_was_created():
    text = (ROOT / "docs" / "webhooks.md").read_text()
    sample = next(
        json.loads(block)
        for block in re.findall(r"```json\n(.*?)```", text, re.S)
        if '"stored_at"' in block and '"schema_version"' in block
    )["file"]
    created, stored, expires = (
        dt.datetime.fromisoformat(sample[key]) for key in ("created_at", "stored_at", "expires_at")
    )
    assert created <= stored
    # FILE_UPLOAD_TTL_HOURS' default, as the table above the sample says.
    assert expires - stored == dt.timedelta(hours=24)


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_to_a_section_name_one_that_exists():
    for doc in DOCS:
        for target, anchor in re.findall(r"\]\(((?:docs/)?[a-z_]+\.md)#([^)]+)\)", doc.read_text()):
            linked = (doc.parent / target).resolve()
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{doc.name}: {target}#{anchor}"


def _readme_commands() -> list[str]:
    """The shell commands the README shows: its ```bash blocks and its inline
    code that starts like a command."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", readme, flags=re.S))
    return [c for c in lines + inline if c]


def test_readme_commands_run_as_written_on_a_fresh_clone():
    """Nothing puts uv (nor anything else in .venv) on PATH: `make` installs
    uv into .data/tools/bin when PATH has none, so a bare `uv run …` or
    `honcho …` is "command not found" to a new user."""
    commands = _readme_commands()
    bare = [c for c in commands if re.match(r"(uv|honcho|celery|gunicorn) [a-z-]", c)]
    assert not bare, bare
    readme = (ROOT / "README.md").read_text()
    assert "UV=$(bash scripts/bootstrap.sh | tail -n1)" in commands
    assert "`.data/tools/bin/uv`" in readme


def test_readme_quick_start_says_what_make_run_is_for_and_how_to_stop_it():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    quick_start = quick_start.split("\n## ", 1)[0]
    assert "not for serving a" in quick_start and "`DEBUG` on" in quick_start
    assert "(docs/operations.md#running-in-production)" in quick_start
    assert "Stop `make run` with **Ctrl-C**" in quick_start
    assert "exits 0" in quick_start
