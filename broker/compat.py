"""What the broker code takes from kombu and Celery beyond their documented API.

``broker`` subclasses kombu's SQLAlchemy channel and virtual transport
and reads Celery's worker state. Those members are private or undocumented:
a minor release may rename or drop one, and the failure would then show up
as a worker that hangs, polls, or loses its fast path, not as an import
error. So every such member is listed here, and ``check_private_members``
(run by ``tests/test_broker_canary.py``) says which one is gone or changed.

The pins in ``pyproject.toml`` (``kombu`` and ``celery`` ``<5.8``) keep an
upgrade from happening unnoticed; before raising them, run the canary
against the new versions and read the changed code it names.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

MEMORY_URL = "memory://"


@dataclass(frozen=True)
class Reliance:
    """One member the broker code uses: ``module:Owner.member`` or ``module:member``."""

    target: str
    why: str
    # For callables: the parameter names after ``self`` (``*args``/``**kwargs``
    # written so). None: only its presence matters.
    params: tuple[str, ...] | None = None
    # Set in ``__init__``, so looked up on a live (in-memory) kombu transport.
    on_instance: bool = False
    # For kombu's model mixins: the column this attribute must be (SQL names it).
    column: str | None = None
    sequence: bool = False


SQLA = "kombu.transport.sqlalchemy"
VIRTUAL = "kombu.transport.virtual"
MODELS = "kombu.transport.sqlalchemy.models"

RELIED_UPON: tuple[Reliance, ...] = (
    # kombu's SQLAlchemy channel: subclassed by broker.transport.Channel.
    Reliance(f"{SQLA}:Channel._engines", "engine cache per broker URL, disposed by hand"),
    Reliance(f"{SQLA}:Channel._open", "returns (engine, sessionmaker) and makes tables", ()),
    Reliance(f"{SQLA}:Channel._get_or_create", "the queue row (its id) for a name", ("queue",)),
    Reliance(
        f"{SQLA}:Channel._new_queue", "overridden to end its transaction", ("queue", "**kwargs")
    ),
    Reliance(f"{SQLA}:Channel._size", "overridden to end its transaction", ("queue",)),
    Reliance(
        f"{SQLA}:Channel._put",
        "overridden by the single-statement put",
        ("queue", "payload", "**kwargs"),
    ),
    Reliance(f"{SQLA}:Channel._get", "overridden by the single-statement fetch", ("queue",)),
    Reliance(f"{SQLA}:Channel.session", "the ORM session, committed or rolled back"),
    Reliance(f"{SQLA}:Channel.queue_cls", "table name of the queues"),
    Reliance(f"{SQLA}:Channel.message_cls", "table and sequence names of the messages"),
    # kombu's table layout, written out in broker's SQL.
    Reliance(f"{MODELS}:Message.id", "message ids from a sequence", column="id", sequence=True),
    Reliance(f"{MODELS}:Message.visible", "false once fetched", column="visible"),
    Reliance(f"{MODELS}:Message.sent_at", "set when fetched", column="timestamp"),
    Reliance(f"{MODELS}:Message.payload", "the JSON message", column="payload"),
    Reliance(f"{MODELS}:Message.version", "ORM version counter, 1 on insert", column="version"),
    Reliance(f"{MODELS}:Message.queue_id", "the queue of a message"),
    Reliance(f"{MODELS}:Queue.id", "queue ids", column="id"),
    Reliance(f"{MODELS}:Queue.name", "queue names", column="name"),
    # kombu's virtual transport: broker.transport.Transport.drain_events.
    Reliance(
        f"{VIRTUAL}:Transport.drain_events",
        "overridden: waits on LISTEN",
        ("connection", "timeout"),
    ),
    Reliance(
        f"{VIRTUAL}:Transport.close_connection",
        "overridden: also closes the LISTEN connection",
        ("connection",),
    ),
    Reliance(
        f"{VIRTUAL}:Transport.cycle",
        "round-robin over channels: .get(callback, timeout=)",
        on_instance=True,
    ),
    Reliance(
        f"{VIRTUAL}:Transport.Cycle.get",
        "fetches one message for a consumer",
        ("callback", "**kwargs"),
    ),
    Reliance(
        f"{VIRTUAL}:Transport._deliver",
        "callback handing a message to its consumer",
        ("message", "queue"),
    ),
    Reliance(f"{VIRTUAL}:Transport.channels", "the open channels", on_instance=True),
    Reliance(f"{VIRTUAL}:Transport.polling_interval", "longest wait without a notification"),
    Reliance(
        f"{VIRTUAL}:Channel._consumers", "whether a channel consumes at all", on_instance=True
    ),
    Reliance(f"{VIRTUAL}:QoS.can_consume", "whether the prefetch window has room", ()),
    # Celery's worker state: a stop request ends the wait at once.
    Reliance("celery.worker.state:should_stop", "warm shutdown requested"),
    Reliance("celery.worker.state:should_terminate", "cold shutdown requested"),
)


def _resolve(target: str) -> tuple[Any, str, Any]:
    """(owner, member name, owner's module) for ``module:Owner.member``; raises if gone."""
    module_name, _, path = target.partition(":")
    module = importlib.import_module(module_name)
    *owners, member = path.split(".")
    owner: Any = module
    for name in owners:
        owner = getattr(owner, name)
    return owner, member, module


def _live_instances(conn: Any) -> dict[type, Any]:
    """Instances of kombu's virtual classes, from an in-memory transport (no server)."""
    from kombu.transport import virtual

    channel = conn.default_channel
    return {
        virtual.Transport: conn.transport,
        virtual.Channel: channel,
        virtual.QoS: channel.qos,
    }


def _signature(func: Any) -> tuple[str, ...]:
    names: list[str] = []
    for p in inspect.signature(func).parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_POSITIONAL:
            names.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.append("**" + p.name)
        else:
            names.append(p.name)
    return tuple(names)


def _problem(reliance: Reliance, live: dict[type, Any]) -> str | None:
    from sqlalchemy import Column, Sequence

    try:
        owner, member, _ = _resolve(reliance.target)
    except (ImportError, AttributeError) as exc:
        return f"its owner is gone ({exc})"
    if reliance.on_instance:
        owner = live.get(owner)
        if owner is None:
            return "no live instance to look it up on"
    if reliance.column is not None:
        column = vars(owner).get(member)
        if not isinstance(column, Column):
            return "is no longer a column of kombu's model"
        # A mixin's column without a name of its own takes the attribute's.
        name = column.name or member
        if name != reliance.column:
            return f"the column is now named {name!r}, not {reliance.column!r}"
        if reliance.sequence and not isinstance(column.default, Sequence):
            return "the column no longer takes its value from a sequence"
        return None
    missing = object()
    value = inspect.getattr_static(owner, member, missing)
    if value is missing:
        return "is gone"
    if reliance.params is not None:
        func = getattr(owner, member)
        if not callable(func):
            return "is no longer callable"
        found = _signature(func)
        if found != reliance.params:
            return (
                f"its parameters are now ({', '.join(found)}), not ({', '.join(reliance.params)})"
            )
    return None


def check_private_members() -> list[str]:
    """One line per member that is gone or changed; empty while all are as relied upon."""
    import celery
    import kombu
    from kombu.connection import Connection

    conn: Any = Connection(MEMORY_URL)
    try:
        live = _live_instances(conn)
        problems = [
            f"{r.target} ({r.why}) {problem}"
            for r in RELIED_UPON
            if (problem := _problem(r, live)) is not None
        ]
    finally:
        conn.release()
    versions = f"kombu {kombu.__version__}, celery {celery.__version__}"
    return [f"{p} [{versions}]" for p in problems]
