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
