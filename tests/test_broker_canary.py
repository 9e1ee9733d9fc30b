"""The canary: kombu and Celery still have every private member ``broker`` relies on.

The pins in pyproject.toml keep kombu and Celery at the minor versions these
tests ran against. When an upgrade changes one of the members, these fail
and name it, instead of workers that hang or quietly lose the fast path.
"""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import celery.worker.state
import pytest
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.transport import virtual
from packaging.requirements import Requirement

import broker
from broker.compat import RELIED_UPON, check_private_members

ROOT = Path(__file__).resolve().parent.parent


def test_every_private_member_the_broker_relies_on_is_still_there():
    problems = check_private_members()
    assert not problems, (
        "kombu or Celery changed what broker relies on; read their new code "
        "for these before moving the pins in pyproject.toml:\n" + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("owner", "member", "replacement", "named"),
    [
        (kombu_sqlalchemy.Channel, "_get_or_create", None, "Channel._get_or_create"),
        (virtual.Transport, "_deliver", lambda self, message: None, "now (message)"),
        (celery.worker.state, "should_terminate", None, "state:should_terminate"),
    ],
)
def test_the_canary_names_a_member_that_is_gone_or_changed(
    monkeypatch, owner, member, replacement, named
):
    if replacement is None:
        monkeypatch.delattr(owner, member)
    else:
        monkeypatch.setattr(owner, member, replacement)
    problems = check_private_members()
    assert len(problems) == 1, problems
    assert named in problems[0]
    assert "kombu 5." in problems[0]


def test_every_kombu_member_the_broker_overrides_is_listed():
    """An override of a private member is a reliance on it; a new kombu member
    with the name of one of ours would be overridden by accident."""
    listed = {r.target.rsplit(".", 1)[-1] for r in RELIED_UPON}
    for ours, base in (
        (broker.Channel, kombu_sqlalchemy.Channel),
        (broker.Transport, virtual.Transport),
    ):
        for name in vars(ours):
            if name.startswith("__") or name in ("Channel",):
                continue
            missing = object()
            if inspect.getattr_static(base, name, missing) is not missing:
                assert name in listed, (
                    f"{ours.__name__}.{name} overrides kombu's; list it in broker/compat.py"
                )


def test_kombu_and_celery_are_pinned_below_the_next_minor_and_installed_within():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {
        Requirement(d).name: Requirement(d).specifier for d in project["project"]["dependencies"]
    }
    for name in ("kombu", "celery"):
        assert "<5.8" in str(pins[name]), f"{name} must keep its upper bound: {pins[name]}"
        assert version(name) in pins[name], (
            f"installed {name} {version(name)} is outside {pins[name]}"
        )
