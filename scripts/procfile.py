"""Run a Procfile's processes side by side and stop them cleanly: `make run`.

    python scripts/procfile.py Procfile.dev

Each line ``name: command`` runs in a session of its own, its output relayed
line by line as ``HH:MM:SS name | line``. When one exits, the others are
stopped and the runner exits non-zero. A ``.env`` beside the Procfile fills
in what the environment does not set (as the Dev settings read it), so a
``WEB_PORT`` there moves runserver too.

Stopping (Ctrl-C, or SIGTERM/SIGHUP to the runner): each process gets one
SIGTERM, to itself only, and up to ``STOP_SECONDS`` to exit; whatever is
left then gets SIGKILL. A Celery worker's SIGTERM is its warm shutdown (it
finishes the tasks it is running, hands back the messages it had reserved and
stops its pool); beat saves its schedule; runserver stops. All stopped in
time: exit 0. A second Ctrl-C more than a second after the first kills at
once.

honcho, which ran Procfile.dev before, sent SIGTERM to each process's whole
process group, so a worker's pool processes died under it and the worker
waited for them until honcho's fixed 5 s were up and it was SIGKILLed; and
make exited 130 (see ``take_the_terminal``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dotenv import dotenv_values

# A worker's warm shutdown waits for the tasks it is running; a webhook
# request may take WEBHOOK_TIMEOUT_SECONDS (15 by default) by itself.
STOP_SECONDS = 30.0
# uv forwards a signal it got to this process, which may have got it too:
# a repeat this soon after the first is the same request.
REPEAT_SECONDS = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SYSTEM = "system"

_output_lock = threading.Lock()


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen[bytes] | None = None
    relay: threading.Thread | None = None
    reported: bool = False

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid


@dataclass
class Runner:
    processes: list[Process]
    env: dict[str, str] = field(default_factory=dict)
    width: int = 0
    signals: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.width = max(len(SYSTEM), *(len(p.name) for p in self.processes))

    def say(self, name: str, line: str) -> None:
        with _output_lock:
            sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | {line}\n")
            sys.stdout.flush()

    def on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(time.monotonic())

    def start(self) -> None:
        # Output to a pipe is block-buffered in Python unless told otherwise,
        # and a developer wants runserver's lines as they happen.
        env = {**self.env, "PYTHONUNBUFFERED": "1"}
        for process in self.processes:
            # A session of its own: the terminal's Ctrl-C reaches only the
            # runner, which stops each process the way that process stops cleanly.
            process.popen = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {process.command}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            assert process.popen.stdout is not None
            process.relay = threading.Thread(
                target=self._relay, args=(process.name, process.popen.stdout), daemon=True
            )
            process.relay.start()
            self.say(SYSTEM, f"{process.name} started (pid {process.pid})")

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip("\r\n"))

    def wait_for_a_reason_to_stop(self) -> Process | None:
        """Block until a stop signal (None) or a process exiting (that process)."""
        while not self.signals:
            for process in self.processes:
                if process.returncode is not None:
                    return process
            time.sleep(0.1)
        return None

    def stop(self) -> bool:
        """SIGTERM to each process still running, then wait; True if all
        stopped within STOP_SECONDS (and no second Ctrl-C cut it short)."""
        asked_at = time.monotonic()
        for process in self.running():
            self.say(SYSTEM, f"sending SIGTERM to {process.name} (pid {process.pid})")
            _signal(process.pid, signal.SIGTERM)
        deadline = asked_at + STOP_SECONDS
        while self.running() and time.monotonic() < deadline:
            self.report_exits()
            if any(at > asked_at + REPEAT_SECONDS for at in self.signals):
                self.say(SYSTEM, "asked again: killing what is left")
                break
            time.sleep(0.1)
        self.report_exits()
        clean = not self.running()
        for process in self.running():
            self.say(SYSTEM, f"{process.name} is still running: sending SIGKILL")
        for process in self.processes:
            # Its whole group: what it started and left behind goes too.
            if process.popen is not None:
                _signal(process.pid, signal.SIGKILL, group=True)
                process.popen.wait()
        self.report_exits()
        for process in self.processes:
            if process.relay is not None:
                process.relay.join(timeout=2)
        return clean

    def running(self) -> list[Process]:
        return [p for p in self.processes if p.popen is not None and p.returncode is None]

    def report_exits(self) -> None:
        for process in self.processes:
            if not process.reported and process.returncode is not None:
                process.reported = True
                self.say(SYSTEM, f"{process.name} stopped ({describe(process.returncode)})")


def describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


def _signal(pid: int, signum: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        (os.killpg if group else os.kill)(pid, signum)


def read_procfile(path: Path) -> list[Process]:
    processes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, command = line.partition(":")
        if not colon or not name.strip() or not command.strip():
            raise SystemExit(f"{path}:{number}: expected `name: command`, got {line!r}")
        processes.append(Process(name=name.strip(), command=command.strip()))
    if not processes:
        raise SystemExit(f"{path}: no processes")
    return processes


def process_env(dotenv: Path) -> dict[str, str]:
    """The environment, with what ``dotenv`` sets and the environment does not."""
    from_file = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    return {**from_file, **os.environ}


def take_the_terminal() -> Callable[[], None]:
    """Make this process the only one a Ctrl-C on its terminal reaches, as a
    shell does for a job; return what gives the terminal back.

    make, and uv between make and this runner, sit in the process group the
    terminal sends Ctrl-C to. make dies of the interrupt once its recipe
    ends, so `make run` said "Interrupt" and exited 130 however cleanly
    everything had stopped. In a group of its own that the terminal treats
    as the foreground, the runner alone gets it. Nothing happens without a
    terminal, or when started in the background.
    """
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return lambda: None
        previous = os.getpgrp()
        os.setpgid(0, 0)
        # A process outside the foreground group may hand the terminal over
        # only while it ignores SIGTTOU.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.tcsetpgrp(fd, os.getpgrp())
    except (OSError, ValueError):
        return lambda: None

    def give_back() -> None:
        # OSError: that group is gone (make was killed), nothing to give back to.
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)

    return give_back


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} PROCFILE")
    procfile = Path(argv[1])
    runner = Runner(read_procfile(procfile), env=process_env(procfile.parent / ".env"))
    give_back = take_the_terminal()
    for signum in STOP_SIGNALS:
        signal.signal(signum, runner.on_signal)
    exited = None
    try:
        runner.start()
        exited = runner.wait_for_a_reason_to_stop()
        if exited is None:
            runner.say(
                SYSTEM,
                f"stopping: each process finishes what it is doing (up to {STOP_SECONDS:.0f} s; "
                "Ctrl-C again to kill them now)",
            )
        else:
            runner.report_exits()
            runner.say(SYSTEM, f"{exited.name} ended: stopping the others")
    finally:
        # On every way out, an exception included: no process outlives the runner.
        clean = runner.stop()
        give_back()
    if exited is not None:
        return exited.returncode or 1
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
