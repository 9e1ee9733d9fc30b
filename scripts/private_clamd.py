"""A throwaway clamd on a private unix socket, for tests and benchmarks.

No signature download is possible (or wanted) here, so its database is one
file of our own: the EICAR test file's MD5 in a ``.hdb`` (``md5:size:name``,
clamd's hash-signature format). clamd loads it in well under a second;
Debian's ``clamav-daemon`` package provides the binary (``scripts/test.sh``
installs it when missing and it may, as it does Chromium).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# The industry-standard harmless test file every scanner detects.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE_NAME = "Doorito.Test.EICAR"
# What clamd reports: a signature from an unsigned database gets ".UNOFFICIAL".
SIGNATURE = f"{SIGNATURE_NAME}.UNOFFICIAL"


def clamd_binary() -> str | None:
    return shutil.which("clamd") or (
        "/usr/sbin/clamd" if os.access("/usr/sbin/clamd", os.X_OK) else None
    )


class PrivateClamd:
    """``with PrivateClamd() as clamd: clamd.url`` (``unix:///…/clamd.sock``).

    ``stop()`` and ``start()`` take it away and bring it back (scanner-down
    tests). Files up to 4000 MB may be streamed (StreamMaxLength).
    """

    def __init__(self) -> None:
        binary = clamd_binary()
        if binary is None:
            raise FileNotFoundError("clamd is not installed (apt-get install clamav-daemon)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="doorito-clamd-"))
        self.socket = self.dir / "clamd.sock"
        self.log = self.dir / "clamd.log"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        db = self.dir / "db"
        db.mkdir()
        (db / "doorito.hdb").write_text(
            f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{SIGNATURE_NAME}\n"  # noqa: S324
        )
        (self.dir / "clamd.conf").write_text(
            "\n".join(
                [
                    f"LocalSocket {self.socket}",
                    f"DatabaseDirectory {db}",
                    f"LogFile {self.log}",
                    f"TemporaryDirectory {self.dir}",
                    "Foreground yes",
                    "StreamMaxLength 4000M",
                    "MaxScanSize 4000M",
                    "MaxFileSize 4000M",
                    "MaxThreads 4",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 30.0) -> None:
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.dir / "clamd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamd exited:\n{self.output()}")
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"clamd did not answer PING within {timeout}s:\n{self.output()}")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        self.socket.unlink(missing_ok=True)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> PrivateClamd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    """``python scripts/private_clamd.py``: a clamd for ``make run`` that knows only EICAR.

    Prints the ``CLAMD_URL`` to put in ``.env`` and runs until Ctrl-C.
    """
    import contextlib
    import signal

    with PrivateClamd() as clamd:
        print(f"CLAMD_URL={clamd.url}", flush=True)
        print("clamd is running (signatures: the EICAR test file only); Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
