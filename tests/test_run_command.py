"""`make run`: it serves /readyz, its worker answers `make manage ARGS="status"`,
and Ctrl-C stops web, worker and beat cleanly with exit 0 (scripts/procfile.py)."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT, free_port
from tests.test_make import find_uv, user_shell_env


class Terminal:
    """A pseudo-terminal a command runs on as its controlling terminal, as in
    a user's shell: writing ``\\x03`` there is pressing Ctrl-C."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.master, replica = pty.openpty()
        self.output = bytearray()
        # setsid --ctty: a session of its own whose controlling terminal is
        # this pty (stdin), so the pty's Ctrl-C goes to its foreground group.
        self.proc = subprocess.Popen(
            ["setsid", "--ctty", *command],
            cwd=ROOT,
            env=env,
            stdin=replica,
            stdout=replica,
            stderr=replica,
        )
        os.close(replica)
        # Drained all along: a full pty buffer would block the processes.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the replica is gone
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def press_ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self.master)


@pytest.mark.processes
@pytest.mark.slow
def test_make_run_serves_its_worker_answers_status_and_ctrl_c_stops_it_cleanly(tmp_path):
    find_uv()
    port = free_port()
    dbname = f"doorito_run_{port}"
    env = {k: v for k, v in user_shell_env().items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{dbname}",
            "WEB_PORT": str(port),
            "MEDIA_ROOT": str(tmp_path),
        }
    )
    terminal = Terminal(["make", "run"], env)
    try:
        started = time.monotonic()
        ready = None
        # Migrations, then three processes importing Django at once: on a busy
        # 2-core machine that alone can take most of a minute.
        while time.monotonic() - started < 150 and terminal.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    ready = r.status
                    break
            except OSError:
                time.sleep(0.5)
        assert ready == 200, terminal.text()[-4000:]
        # Beside it, as the README says; Dev's eager default used to make
        # this say "cannot check a worker". Beat may still be starting: it
        # counts once it holds the scheduler lock.
        for _ in range(10):
            status = subprocess.run(
                ["make", "--no-print-directory", "manage", "ARGS=status --timeout 60"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if status.returncode == 0:
                break
            time.sleep(3)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "beat       ok" in status.stdout
        assert "worker     ok" in status.stdout

        terminal.press_ctrl_c()
        pressed = time.monotonic()
        exit_code = terminal.proc.wait(timeout=60)
        log = terminal.text()
        assert exit_code == 0, log[-4000:]
        # Well inside the runner's 30 s: nothing waited to be killed.
        assert time.monotonic() - pressed < 25, log[-4000:]
        for name in ("web", "worker", "beat"):
            assert f"system | {name} stopped (exit 0)" in log, log[-4000:]
        assert "Warm shutdown" in log
        assert "SIGKILL" not in log and "Interrupt" not in log and "Error 130" not in log
    finally:
        terminal.close()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


# A process that takes longer than honcho's 5 s to stop, and has a child in
# its process group that, like a Celery pool process, it stops itself.
SLOW_TO_STOP = """
import os, signal, subprocess, sys, time
out = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", '''
import signal, sys, time
def got(signum, frame):
    open(sys.argv[1], "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, got)
signal.signal(signal.SIGUSR1, got)
time.sleep(120)
''', out + ".child"])
def stop(signum, frame):
    time.sleep(6)
    child.send_signal(signal.SIGUSR1)
    child.wait()
    open(out, "w").write("stopped cleanly")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(120)
"""


def _runner(tmp_path: Path, procfile: str) -> subprocess.Popen[str]:
    (tmp_path / "Procfile").write_text(procfile)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "procfile.py"), str(tmp_path / "Procfile")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for(proc: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return
    raise AssertionError("".join(seen))


@pytest.mark.processes
@pytest.mark.slow
def test_the_runner_waits_for_each_process_to_stop_and_exits_0(tmp_path):
    """SIGTERM to the process alone (not its group), and more than honcho's 5 s."""
    (tmp_path / "slow.py").write_text(SLOW_TO_STOP)
    runner = _runner(
        tmp_path,
        f"slow: {sys.executable} slow.py {tmp_path / 'slow.out'}\n"
        f"quick: {sys.executable} -c 'import time; print(\"up\", flush=True); time.sleep(120)'\n",
    )
    seen: list[str] = []
    try:
        _wait_for(runner, "slow   | ready", seen)
        asked = time.monotonic()
        # What uv does when make's whole group gets SIGTERM: the runner gets it twice.
        runner.send_signal(signal.SIGTERM)
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    log = "".join(seen) + out
    assert runner.returncode == 0, log
    assert time.monotonic() - asked > 6
    assert (tmp_path / "slow.out").read_text() == "stopped cleanly", log
    # The child heard from its parent, never from the runner.
    assert (tmp_path / "slow.out.child").read_text() == "SIGUSR1", log
    assert "slow stopped (exit 0)" in log and "quick stopped (killed by SIGTERM)" in log
    assert "SIGKILL" not in log


@pytest.mark.processes
def test_the_runner_stops_the_others_when_one_ends(tmp_path):
    runner = _runner(
        tmp_path,
        f"web: {sys.executable} -c 'import sys, time; time.sleep(1); sys.exit(3)'\n"
        f"worker: {sys.executable} -c 'import time; time.sleep(120)'\n",
    )
    try:
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert runner.returncode == 3, out
    assert "web stopped (exit 3)" in out
    assert "web ended: stopping the others" in out
    assert "worker stopped (killed by SIGTERM)" in out


@pytest.mark.processes
def test_the_runner_reads_dot_env_where_the_environment_is_silent(tmp_path, monkeypatch):
    """As honcho did: a WEB_PORT in .env must move runserver, not only the links."""
    (tmp_path / ".env").write_text("FROM_FILE=file\nBOTH=file\n")
    monkeypatch.setenv("BOTH", "environment")
    monkeypatch.delenv("FROM_FILE", raising=False)
    runner = _runner(tmp_path, 'show: echo "$FROM_FILE $BOTH"\n')
    try:
        out, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert "show   | file environment" in out, out
