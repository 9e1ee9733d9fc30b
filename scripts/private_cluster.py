"""A throwaway PostgreSQL cluster on a free port, for tests and benchmarks that
stop and start the database (or need more connections than a shared server
has to spare).

It is ``scripts/ensure_db.py`` pointed at a private data directory, so it
uses the same binaries and the same run-as-postgres rule. Never touches the
shared server on 5432.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateCluster:
    def __init__(self, *, dbname: str = "doorito", max_connections: int | None = None):
        self.port = free_port()
        self.dbname = dbname
        self.max_connections = max_connections
        # Directly under the system temp dir and opened up: as root the
        # cluster runs as the postgres user, which must reach it.
        self.base = Path(tempfile.mkdtemp(prefix=f"doorito-cluster-{self.port}-"))
        os.chmod(self.base, 0o755)  # noqa: S103 - the postgres user must traverse it
        self.data = self.base / "cluster"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
        env.update({"DATABASE_URL": self.url, "DOORITO_PG_DATA": str(self.data)})
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "ensure_db.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"ensure_db.py {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def start(self) -> None:
        """Start it (initialising it the first time) and create the database."""
        first = not (self.data / "PG_VERSION").exists()
        self._run()
        if first and self.max_connections:
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(f"\nmax_connections = {self.max_connections}\n")
            self.stop()
            self._run()

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a restart."""
        self._run("stop")

    def restart(self) -> None:
        """``pg_ctl restart`` (fast mode): connections cut, back up before it returns."""
        from scripts.ensure_db import embedded_bindir, find_bindir, run_as

        bindir = find_bindir() or embedded_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries found")
        owner = "postgres" if os.geteuid() == 0 else None
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60"]
        run_as([*pg_ctl, "-l", str(self.data / "server.log"), "restart"], owner)

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
