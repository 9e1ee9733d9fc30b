"""Fault injection: webhook delivery through SIGKILLed workers and database outages.

Everything runs against a private PostgreSQL cluster this script starts (and
removes) itself, with the documented processes: a Celery worker (``celery -A
boot worker -Q high,default -c 4``) and beat (``celery -A boot beat
--scheduler boot.beat:DatabaseScheduler``) on the SQL broker, and the uvicorn
receiver (``bench/webhook_receiver.py``) in its own process. Two endpoints:

- **healthy**: answers 500 to 30 % of requests and holds 3 % for 5 s
  (``--fail-pct``, ``--stall-pct``, ``--stall-seconds``); every request's
  Standard Webhooks signature is checked;
- **slow**: holds every request 25 s (``--slow-seconds``), then answers 204.

Three phases, each with its own endpoints, events emitted one per
transaction at ``--rate`` per second:

1. **baseline**: ``--phase-events`` events, the healthy endpoint alone;
2. **slow**: the same with the slow endpoint beside it;
3. **faults**: ``--events`` events to both endpoints while ``--kills``
   SIGKILLs of the worker's process group (restarted at once), one ``pg_ctl
   restart`` and one ``--stop-seconds`` stop of the cluster are spread over
   the emission; then a drain of at most ``--drain-seconds``.

The run shortens the retry schedule (``WEBHOOK_RETRY_SCHEDULE=2,4,8``), allows
15 attempts (a 30 % failing receiver exhausts 8 once in ~15 000 deliveries,
which is the dice, not the engine), sweeps every minute and adds a beat entry
that sends ``common.tasks.ping`` every ``--beat-interval`` seconds to a queue
nobody consumes (so every send stays visible). Figures and how they are
measured: see ``bench/README.md``, "Fault injection".

    .venv/bin/python bench/faults.py            # ~15 min
    .venv/bin/python bench/faults.py --quick    # ~5 min
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _harness as harness  # noqa: E402
from scripts.private_cluster import PrivateCluster  # noqa: E402

PROBE = "bench-beat-probe"  # the beat entry and the queue it sends to
LOGS = ROOT / ".data" / "bench-faults"
RETRY_SCHEDULE = "2,4,8"
MAX_ATTEMPTS = "15"
# Seconds between the end of one fault and the start of the next.
FAULT_GAP = 10.0
# A retry's run is queued for the whole second after its time (one message
# per second of retries), so a retry due this shortly before a fault could
# not be sent before it: the fault's window starts this much earlier.
DUE_MARGIN = 1.0
# A reply decided this shortly before a kill may not have been read or
# recorded by the killed worker (outcomes are flushed up to 20 ms late).
KILL_MARGIN = 0.25

# Two observers the engine does not provide: each claim of a delivery with
# the next_attempt_at it was claimed for (a later attempt overwrites it), and
# the moment each probe message reached the broker table.
OBSERVERS_SQL = """
CREATE TABLE bench_claim (
    delivery_id uuid, endpoint_id uuid, attempt int, old_status text,
    scheduled_at timestamptz, claimed_at timestamptz
);
CREATE FUNCTION bench_record_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_claim VALUES (NEW.id, NEW.endpoint_id, NEW.attempts, OLD.status,
                                    OLD.next_attempt_at, clock_timestamp());
    RETURN NULL;
END $$;
CREATE TRIGGER bench_claim AFTER UPDATE ON common_webhookdelivery
    FOR EACH ROW WHEN (NEW.attempts > OLD.attempts) EXECUTE FUNCTION bench_record_claim();

CREATE TABLE bench_probe_send (sent_at timestamptz);
CREATE FUNCTION bench_record_probe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM kombu_queue WHERE id = NEW.queue_id AND name = '%(probe)s') THEN
        INSERT INTO bench_probe_send VALUES (clock_timestamp());
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_probe AFTER INSERT ON kombu_message
    FOR EACH ROW EXECUTE FUNCTION bench_record_probe();
"""


def say(msg: str) -> None:
    print(msg, flush=True)


def emit_one(key: str) -> None:
    """The bench's only call into the engine's emit API (its module may move).

    The key doubles as idempotency key, so retrying an event whose commit
    outcome was unknown (the database went away) never makes two events.
    """
    from common.services.emit import emit_event

    emit_event(
        event_type="file.stored",
        aggregate_type="bench",
        aggregate_id=key,
        payload={"key": key},
        idempotency_key=key,
    )


def create_endpoint(url: str) -> tuple[str, str]:
    """A new active endpoint; returns its id and signing secret."""
    from common.services.webhooks import endpoint_create

    endpoint, secret = endpoint_create(url=url)
    return str(endpoint.id), secret


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``inf`` entries (never delivered) sort last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def fmt_s(value: float) -> str:
    if math.isnan(value):
        return "none measured"
    return "never" if math.isinf(value) else f"{value:.2f} s"


@dataclass
class Outage:
    kind: str
    down_at: float
    back_at: float = math.nan
    in_flight: int = 0


@dataclass
class Phase:
    name: str
    endpoints: dict[str, tuple[str, str]]  # role -> (endpoint id, receiver path)
    committed: dict[str, float] = field(default_factory=dict)  # key -> commit time
    killed_at: list[float] = field(default_factory=list)
    ready_at: dict[float, float] = field(default_factory=dict)  # kill -> successor ready
    # Per kill: (event id, endpoint id) of the deliveries claimed and not recorded.
    unrecorded_at_kills: list[set[tuple[str, str]]] = field(default_factory=list)
    kills: list[tuple[int, int]] = field(default_factory=list)  # (DB in flight, open requests)
    outages: list[Outage] = field(default_factory=list)


class Bench:
    """The cluster, the processes and the faults; ``close`` undoes all of it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cluster = PrivateCluster(dbname="doorito_faults", max_connections=200)
        self.port = harness.free_port()
        self.receiver: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # Claimed deliveries seen at the kills, and at any fault: each can be
        # sent once more after its lease runs out (a duplicate if it got a 2xx).
        self.killed: set[str] = set()
        self.at_faults: set[str] = set()
        self.fault_error: BaseException | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        for name in ("worker.log", "beat.log"):
            (LOGS / name).write_text("")

    # --- set-up ---------------------------------------------------------------

    def setup(self) -> None:
        say(f"private PostgreSQL on port {self.cluster.port}; logs in {LOGS}")
        self.cluster.start()
        url = self.cluster.url
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "boot.settings",
                "DJANGO_CONFIGURATION": "Test",
                "DATABASE_URL": url,
                "CELERY_BROKER_URL": "sqla+postgresql+psycopg://" + url.removeprefix("postgres://"),
                "DATABASE_CONN_MAX_AGE": "60",
                # This process only emits: its warnings about the outages are expected.
                "LOG_LEVEL": "ERROR",
                "WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
                "WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS,
                "OUTBOX_SWEEP_INTERVAL_MINUTES": "1",
                # The slow endpoint's 25 s must stay under the request timeout
                # (30 s, a constant today; a setting of this name may replace it).
                "WEBHOOK_TIMEOUT_SECONDS": "30",
                "MEDIA_ROOT": str(self.cluster.base / "media"),
            }
        )
        import configurations

        configurations.setup()
        # Errors are expected here during the outages (a commit's on-commit
        # publish failing, say); the worker's and beat's logs are in LOGS.
        logging.disable(logging.ERROR)
        from django.core.management import call_command
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        call_command("migrate", verbosity=0)
        every, _ = IntervalSchedule.objects.get_or_create(
            every=self.args.beat_interval, period="seconds"
        )
        PeriodicTask.objects.create(
            name=PROBE, task="common.tasks.ping", interval=every, queue=PROBE
        )
        self.receiver = harness.start_receiver(self.port)
        self.start_worker()
        from common.tasks import ping

        ping.apply_async().get(timeout=120)  # the worker consumes; kombu's tables exist
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(OBSERVERS_SQL.replace("%(probe)s", PROBE))
        self.beat = harness.start_beat(self.child_env(), LOGS / "beat.log", LOGS / "beat-schedule")
        deadline = time.monotonic() + 120
        while not self.sql("SELECT count(*) FROM bench_probe_send")[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"beat sent nothing; see {LOGS / 'beat.log'}")
            time.sleep(0.5)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """A short psycopg connection: safe from any thread, and across restarts."""
        import psycopg

        dsn = self.cluster.url.replace("postgres://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def child_env(self) -> dict[str, str]:
        return {**os.environ, "LOG_LEVEL": self.args.log_level}

    def start_worker(self) -> None:
        # At INFO: the kills' windows end at the new worker's "ready." line.
        cmd = harness.worker_command(self.args.concurrency, loglevel="info")
        self.worker = harness.spawn(cmd, self.child_env(), LOGS / "worker.log")

    def configure(self, path: str, secret: str, **behaviour: float) -> None:
        harness.receiver_post(self.port, "/_config", {path: {"secret": secret, **behaviour}})

    # --- faults ---------------------------------------------------------------

    def in_flight(self, phase: Phase, *, kill: bool) -> int:
        """This phase's deliveries claimed and not yet recorded, but those a kill orphaned."""
        rows = self.sql(
            "SELECT id::text, event_id::text, endpoint_id::text FROM common_webhookdelivery "
            "WHERE status = 'sending' AND endpoint_id = ANY(%s::uuid[])",
            ([endpoint_id for endpoint_id, _ in phase.endpoints.values()],),
        )
        ids = {r[0] for r in rows} - self.killed
        self.at_faults |= ids
        if kill:
            self.killed |= ids
            phase.unrecorded_at_kills.append({(r[1], r[2]) for r in rows if r[0] in ids})
        return len(ids)

    def kill(self, phase: Phase) -> None:
        with self.lock:
            paths = [path for _, path in phase.endpoints.values()]
            open_now = harness.receiver_get(self.port, "/_inflight")
            open_requests = sum(open_now.get(path, 0) for path in paths)
            in_flight = self.in_flight(phase, kill=True)
            phase.killed_at.append(time.time())
            assert self.worker is not None  # started before any phase
            with contextlib.suppress(ProcessLookupError):  # it may have died on its own
                os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
            offset = (LOGS / "worker.log").stat().st_size
            self.start_worker()
            threading.Thread(target=self._wait_ready, args=(phase, offset), daemon=True).start()
        phase.kills.append((in_flight, open_requests))
        say(f"  SIGKILL worker group: {in_flight} deliveries in flight, {open_requests} open")

    def _wait_ready(self, phase: Phase, offset: int) -> None:
        """When the new worker logs that it is ready (Celery's ``… ready.`` line).

        A ping task is no use here: it waits behind the delivery runs the new
        worker fetched first. The log is read from where the new worker began.
        """
        killed_at = phase.killed_at[-1]
        log = LOGS / "worker.log"
        while not self.stopping.wait(0.05):
            with log.open("rb") as f:
                f.seek(offset)
                if b" ready." in f.read():
                    phase.ready_at[killed_at] = time.time()
                    return

    def restart_database(self, phase: Phase) -> None:
        outage = Outage("pg_ctl restart", time.time(), in_flight=self.in_flight(phase, kill=False))
        self.cluster.restart()
        outage.back_at = time.time()
        phase.outages.append(outage)
        say(f"  pg_ctl restart: down {outage.back_at - outage.down_at:.1f} s")

    def stop_database(self, phase: Phase) -> None:
        in_flight = self.in_flight(phase, kill=False)
        self.cluster.stop()
        outage = Outage(f"{self.args.stop_seconds:g} s stop", time.time(), in_flight=in_flight)
        self.stopping.wait(self.args.stop_seconds)
        back: list[float] = []
        poller = threading.Thread(target=self._first_connect, args=(back,), daemon=True)
        poller.start()
        self.cluster.start()
        poller.join(timeout=60)
        outage.back_at = back[0] if back else time.time()
        phase.outages.append(outage)
        say(f"  database stopped: down {outage.back_at - outage.down_at:.1f} s")

    def _first_connect(self, out: list[float]) -> None:
        while not self.stopping.is_set():
            try:
                self.sql("SELECT 1")
                out.append(time.time())
                return
            except Exception:
                time.sleep(0.05)

    def run_faults(self, phase: Phase, started: float, duration: float) -> None:
        """Kills and outages spread evenly over the emission, each at least
        ``FAULT_GAP`` seconds after the previous one ended: a kill a moment
        after the database came back (the 30 s stop pushes the next fault
        there) would measure two faults as one."""
        plan = ["kill"] * self.args.kills
        for i in range(self.args.restarts):
            plan.insert(min(len(plan), (i + 1) * len(plan) // 3), "restart")
        for i in range(self.args.stops):
            plan.insert(min(len(plan), (2 + i) * len(plan) // 3 + 1), "stop")
        actions = {"kill": self.kill, "restart": self.restart_database, "stop": self.stop_database}
        ended = -math.inf
        try:
            for j, action in enumerate(plan):
                at = max(started + duration * (j + 1) / (len(plan) + 1), ended + FAULT_GAP)
                if self.stopping.wait(max(0.0, at - time.monotonic())):
                    return
                actions[action](phase)
                ended = time.monotonic()
        except BaseException as exc:  # raised again in the main thread
            self.fault_error = exc

    # --- phases ---------------------------------------------------------------

    def new_phase(self, name: str, roles: list[str]) -> Phase:
        from common.models import WebhookEndpoint

        WebhookEndpoint.objects.update(is_active=False)
        # The last phase's runs still hold claims (a slow request takes 25 s):
        # let them end, so this phase's figures are its own.
        deadline = time.monotonic() + self.args.phase_drain
        while (
            time.monotonic() < deadline
            and self.sql(
                "SELECT count(*) FROM common_webhookdelivery WHERE status = 'sending' "
                "AND lease_expires_at > now() AND NOT (id::text = ANY(%s))",
                (list(self.killed),),
            )[0][0]
        ):
            time.sleep(1.0)
        behaviour = {
            "healthy": {
                "fail_pct": self.args.fail_pct,
                "stall_pct": self.args.stall_pct,
                "stall_seconds": self.args.stall_seconds,
            },
            "slow": {"stall_pct": 100, "stall_seconds": self.args.slow_seconds},
        }
        endpoints = {}
        for role in roles:
            path = f"/{name}-{role}"
            endpoint_id, secret = create_endpoint(f"http://127.0.0.1:{self.port}{path}")
            self.configure(path, secret, **behaviour[role])
            endpoints[role] = (endpoint_id, path)
        return Phase(name, endpoints)

    def emit(self, phase: Phase, n: int) -> None:
        """``n`` events, one per transaction, at the rate; waits out database outages.

        After a failed commit the event is tried again (same key) and the pace
        restarts from then: a client cannot catch up on requests it could not make.
        """
        from django.db import Error, connection, transaction

        interval = 1 / self.args.rate
        next_at = time.monotonic()
        for i in range(n):
            key = f"{phase.name}-{i}"
            while True:
                try:
                    with transaction.atomic():
                        emit_one(key)
                    phase.committed[key] = time.time()
                    break
                except Error:
                    with contextlib.suppress(Error):
                        connection.close()
                    if self.stopping.wait(0.2):
                        raise KeyboardInterrupt from None
                    next_at = time.monotonic()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def drain(self, phase: Phase, n: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        paths = [path for _, path in phase.endpoints.values()]
        while time.monotonic() < deadline:
            if all(harness.receiver_get(self.port, f"/_count?path={p}") >= n for p in paths):
                time.sleep(2.0)  # late duplicates
                break
            time.sleep(1.0)

    def run_phase(self, name: str, roles: list[str], n: int, *, faults: bool) -> Phase:
        phase = self.new_phase(name, roles)
        say(f"phase {name}: {n} events at {self.args.rate:g}/s to {', '.join(roles)}")
        fault_thread = None
        if faults:
            fault_thread = threading.Thread(
                target=self.run_faults,
                args=(phase, time.monotonic(), n / self.args.rate),
                daemon=True,
            )
            fault_thread.start()
        self.emit(phase, n)
        if fault_thread is not None:
            fault_thread.join()
            if self.fault_error is not None:
                raise RuntimeError("a fault could not be injected") from self.fault_error
        self.drain(phase, n, self.args.drain_seconds if faults else self.args.phase_drain)
        return phase

    # --- results --------------------------------------------------------------

    def results(self, phase: Phase) -> dict:
        rows = self.sql(
            "SELECT aggregate_id, id::text FROM common_outboxevent WHERE aggregate_id LIKE %s",
            (f"{phase.name}-%",),
        )
        event_ids = dict(rows)
        out: dict = {"emitted": len(event_ids), "roles": {}}
        for role, (endpoint_id, path) in phase.endpoints.items():
            log = harness.receiver_get(self.port, f"/_log?path={path}")
            ok = Counter(row[0] for row in log if 200 <= row[3] < 300)
            first_ok: dict[str, float] = {}
            for msg_id, arrived, _, status, _ in log:
                if 200 <= status < 300:
                    first_ok[msg_id] = min(arrived, first_ok.get(msg_id, math.inf))
            latencies = [
                first_ok.get(event_id, math.inf) - phase.committed.get(key, math.nan)
                for key, event_id in event_ids.items()
                if key in phase.committed
            ]
            missing = [eid for eid in event_ids.values() if eid not in ok]
            # A request is in flight at a kill when it had arrived and the
            # killed worker had not recorded its outcome: its answer was not
            # decided KILL_MARGIN before the kill (outcomes are written up to
            # 20 ms after), or its delivery was still claimed and unrecorded
            # (a run holding outcomes through an outage writes them within a
            # second of the database's return).
            # Only requests of the killed worker count (sent after the kill
            # before it): a dead worker's requests the receiver still holds
            # are not in flight twice.
            at_kills: set[tuple[str, float]] = set()
            since = -math.inf
            for k, unrecorded in zip(phase.killed_at, phase.unrecorded_at_kills, strict=True):
                at_kills |= {
                    (row[0], k)
                    for row in log
                    if since < row[1] <= k
                    and (row[2] > k - KILL_MARGIN or (row[0], endpoint_id) in unrecorded)
                }
                since = k
            in_flight_ids = {msg_id for msg_id, _ in at_kills}
            twice = {msg_id for msg_id, n in ok.items() if n > 1}
            states = dict(
                self.sql(
                    "SELECT status, count(*) FROM common_webhookdelivery "
                    "WHERE endpoint_id = %s AND event_id = ANY(%s::uuid[]) GROUP BY status",
                    (endpoint_id, missing),
                )
            )
            out["roles"][role] = {
                "delivered": len(ok),
                "lost": len(missing),
                "lost_states": states,
                "duplicates": sum(c - 1 for c in ok.values()),
                "in_flight_at_kills": len(at_kills),
                "duplicates_not_in_flight": len(twice - in_flight_ids),
                "signature_failures": sum(1 for row in log if not row[4]),
                "requests": len(log),
                "p50": percentile(latencies, 0.50),
                "p99": percentile(latencies, 0.99),
            }
        out["lateness"] = self.lateness(phase)
        return out

    def lateness(self, phase: Phase) -> dict[str, float | str]:
        """Claim time minus the ``next_attempt_at`` a retry was scheduled for.

        Raw, and from when the engine could act: a retry due inside a fault's
        window (the database down, or a killed worker's successor not yet
        claiming) is late from the window's end, since no engine sends
        without a database or a worker.
        """
        ids = [endpoint_id for endpoint_id, _ in phase.endpoints.values()]
        rows = [
            (float(s), float(c))
            for s, c in self.sql(
                "SELECT extract(epoch FROM scheduled_at), extract(epoch FROM claimed_at) "
                "FROM bench_claim WHERE attempt >= 2 AND old_status = 'pending' "
                "AND endpoint_id = ANY(%s::uuid[])",
                (ids,),
            )
        ]
        every = [c - s for s, c in rows]
        # An outage's window ends when the database accepts connections again;
        # a kill's when the successor worker first answers a ping (it boots in
        # a few seconds, and a worker's boot is not delivery's lateness).
        windows = [(o.down_at - DUE_MARGIN, o.back_at) for o in phase.outages] + [
            (k - DUE_MARGIN, phase.ready_at.get(k, math.inf)) for k in phase.killed_at
        ]

        def available(due: float) -> float:
            return max([due] + [b for a, b in windows if a <= due <= b])

        engine = [c - available(s) for s, c in rows]
        # For a closer look: every retry, and the windows, in LOGS.
        with (LOGS / f"retries-{phase.name}.tsv").open("w") as out:
            out.write("due\tclaimed\tavailable\n")
            for s, c in sorted(rows):
                out.write(f"{s:.3f}\t{c:.3f}\t{available(s):.3f}\n")
            for a, b in windows:
                out.write(f"# window {a:.3f} {b:.3f}\n")
        return {
            "retries": len(every),
            "p50": percentile(every, 0.5),
            "p99": percentile(every, 0.99),
            "max": max(every, default=math.nan),
            "in_windows": sum(1 for s, _ in rows if available(s) > s),
            "engine_p50": percentile(engine, 0.5),
            "engine_p99": percentile(engine, 0.99),
            "engine_max": max(engine, default=math.nan),
            # Seconds each window lasted, one string for the report.
            "fault_windows": ", ".join(f"{b - a:.1f} s" for a, b in windows),
        }

    def beat_recovery(self, phase: Phase) -> list[float]:
        sends = [
            float(r[0])
            for r in self.sql("SELECT extract(epoch FROM sent_at) FROM bench_probe_send")
        ]
        return [
            min((s for s in sends if s >= o.back_at), default=math.inf) - o.back_at
            for o in phase.outages
        ]

    # --- tear-down ------------------------------------------------------------

    def close(self) -> None:
        self.stopping.set()
        with self.lock:
            for proc in (self.worker, self.beat, self.receiver):
                if proc is not None:
                    harness.stop(proc, timeout=5)  # a slow request would hold it 25 s
        try:
            from django.db import connections

            connections.close_all()
            from kombu.transport.sqlalchemy import Channel

            from boot.celery import app

            app.pool.force_close_all()
            for engine, _ in list(Channel._engines.values()):
                engine.dispose()
            Channel._engines.clear()
        except Exception:  # noqa: S110 - Django may not be set up yet
            pass
        self.cluster.destroy()


def report(args: argparse.Namespace, bench: Bench, phases: dict[str, Phase]) -> None:
    base = bench.results(phases["baseline"])
    slow = bench.results(phases["slow"])
    fault = bench.results(phases["faults"])
    faults = phases["faults"]
    h = fault["roles"]["healthy"]
    s = fault["roles"]["slow"]
    kills_in_flight = sum(k[0] for k in faults.kills)
    kills_open = sum(k[1] for k in faults.kills)
    duplicates = h["duplicates"] + s["duplicates"]
    kills_log = h["in_flight_at_kills"] + s["in_flight_at_kills"]
    not_in_flight = h["duplicates_not_in_flight"] + s["duplicates_not_in_flight"]
    recovery = bench.beat_recovery(faults)
    lat = fault["lateness"]
    say("")
    say(
        f"faults phase: {fault['emitted']} events emitted at {args.rate:g}/s, worker -c "
        f"{args.concurrency}, {len(faults.kills)} SIGKILLs, "
        + ", ".join(f"{o.kind} ({o.back_at - o.down_at:.1f} s down)" for o in faults.outages)
    )
    for role, r in (("healthy", h), ("slow", s)):
        say(
            f"  {role:8} delivered {r['delivered']}, lost {r['lost']} "
            f"(undelivered by state: {r['lost_states'] or '-'}), duplicates {r['duplicates']}, "
            f"signature failures {r['signature_failures']}, requests {r['requests']}"
        )
    say(
        "  in flight at the kills (claimed, not recorded / open at the receiver): "
        + ", ".join(f"{a}/{b}" for a, b in faults.kills)
        + f"; at the outages: {', '.join(str(o.in_flight) for o in faults.outages)}"
        + f"; distinct at all faults: {len(bench.at_faults)}"
    )
    say(
        f"  retry lateness, due -> claim: {lat['retries']} retries, p50 {fmt_s(lat['p50'])}, "
        f"p99 {fmt_s(lat['p99'])}, max {fmt_s(lat['max'])}"
    )
    say(
        f"  retry lateness from when the engine could act ({lat['in_windows']} retries fell "
        f"due inside a fault's window: {lat['fault_windows']}): p50 {fmt_s(lat['engine_p50'])}, "
        f"p99 {fmt_s(lat['engine_p99'])}, max {fmt_s(lat['engine_max'])}"
    )
    say(
        "  beat recovery (database back -> first probe send, every "
        f"{args.beat_interval} s): "
        + ", ".join(f"{o.kind} {fmt_s(r)}" for o, r in zip(faults.outages, recovery, strict=True))
    )
    say(f"  healthy commit->2xx p50/p99 under faults: {fmt_s(h['p50'])} / {fmt_s(h['p99'])}")
    for name, result in (("baseline", base), ("slow", slow)):
        bl = result["lateness"]
        say(
            f"retry lateness, {name} phase (no faults): {bl['retries']} retries, "
            f"p50 {fmt_s(bl['p50'])}, p99 {fmt_s(bl['p99'])}, max {fmt_s(bl['max'])}"
        )
    bh, sh = base["roles"]["healthy"], slow["roles"]["healthy"]
    say(
        f"healthy endpoint commit->2xx, {args.phase_events} events, no faults: "
        f"alone p50 {fmt_s(bh['p50'])} p99 {fmt_s(bh['p99'])} (lost {bh['lost']}); "
        f"beside the slow one p50 {fmt_s(sh['p50'])} p99 {fmt_s(sh['p99'])} "
        f"(lost {sh['lost']}, slow endpoint delivered {slow['roles']['slow']['delivered']})"
    )
    sig = sum(r["signature_failures"] for p in (base, slow, fault) for r in p["roles"].values())
    ratio = sh["p99"] / bh["p99"] if bh["p99"] else math.inf
    targets = [
        ("0 lost (healthy endpoint)", h["lost"] == 0, str(h["lost"])),
        ("0 signature failures (all phases)", sig == 0, str(sig)),
        (
            # In flight at a kill: arrived, and answered less than KILL_MARGIN
            # before it (or after it). Every duplicate must be one of them.
            "duplicates <= requests in flight at the kills, each one of them",
            duplicates <= kills_log and not_in_flight == 0,
            f"{duplicates} <= {kills_log}, {not_in_flight} not in flight at a kill"
            f" (open at the receiver at the kills {kills_open}; claimed, not recorded:"
            f" {kills_in_flight} at the kills, {len(bench.at_faults)} distinct with the outages)",
        ),
        ("healthy p99 beside slow <= 2x alone", ratio <= 2, f"{ratio:.2f}x"),
        (
            "retry lateness p99 <= 2 s, from when the engine could act",
            lat["engine_p99"] <= 2,
            f"{fmt_s(lat['engine_p99'])} (due -> claim: {fmt_s(lat['p99'])})",
        ),
        (
            f"beat sends within {args.beat_interval} s of the database's return",
            all(r <= args.beat_interval for r in recovery),
            ", ".join(fmt_s(r) for r in recovery),
        ),
    ]
    say("targets:")
    for name, met, value in targets:
        say(f"  {'met    ' if met else 'NOT met'}  {name}: {value}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--events", type=int, default=5000, help="events in the faults phase")
    add("--rate", type=float, default=25.0, help="events per second (one per transaction)")
    add("--kills", type=int, default=5, help="SIGKILLs of the worker group")
    add("--restarts", type=int, default=1, help="pg_ctl restarts")
    add("--stops", type=int, default=1, help="database stops")
    add("--stop-seconds", type=float, default=30.0)
    add("--phase-events", type=int, default=500, help="events in the baseline and slow phases")
    add("--phase-drain", type=float, default=90.0, help="seconds the two first phases may drain")
    add("--drain-seconds", type=float, default=450.0, help="seconds the faults phase may drain")
    add("--concurrency", type=int, default=4, help="worker -c")
    add("--fail-pct", type=float, default=30.0)
    add("--stall-pct", type=float, default=3.0)
    add("--stall-seconds", type=float, default=5.0)
    add("--slow-seconds", type=float, default=25.0)
    add("--beat-interval", type=int, default=10, help="seconds between the probe's sends")
    add("--log-level", default="WARNING", help="the worker's and beat's LOG_LEVEL")
    add("--quick", action="store_true", help="500 events, 2 kills, 10 s stop, short drains")
    args = parser.parse_args()
    if args.quick:
        args.events, args.kills, args.stop_seconds = 500, 2, 10.0
        args.phase_events, args.phase_drain, args.drain_seconds = 100, 45.0, 120.0
    if args.events < 1 or args.phase_events < 1 or args.rate <= 0 or args.kills < 0:
        parser.error("--events and --phase-events must be >= 1, --rate > 0, --kills >= 0")
    return args


def main() -> None:
    args = parse_args()
    bench = Bench(args)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    # Also when started in the background, where SIGINT comes in ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        bench.setup()
        phases = {
            "baseline": bench.run_phase("baseline", ["healthy"], args.phase_events, faults=False),
            "slow": bench.run_phase("slow", ["healthy", "slow"], args.phase_events, faults=False),
            "faults": bench.run_phase("faults", ["healthy", "slow"], args.events, faults=True),
        }
        report(args, bench, phases)
        say(f"run took {(time.monotonic() - started) / 60:.1f} min")
    finally:
        bench.close()


if __name__ == "__main__":
    main()
