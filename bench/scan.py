"""Scanning throughput: Doorito's INSTREAM client against ``clamdscan --stream``.

Both send the same file to the same private clamd (``scripts/private_clamd.py``:
a unix socket, the EICAR-only signature database) one after the other, round
after round; the figure is the ratio of the medians (target >= 0.8x). Then one
1 GiB file is scanned the way ``verify_file`` does it (read from storage,
streamed to clamd): the time between a 1 GiB tus upload's last answer and its
``stored`` record (``file.stored``).

    .venv/bin/python bench/scan.py                 # 256 MiB x 5 rounds, then 1 GiB
    .venv/bin/python bench/scan.py --size-mib 64 --rounds 3 --skip-gib
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")

import configurations  # noqa: E402

configurations.setup()

from portal.services.clamd import CHUNK_SIZE, clamd_scan  # noqa: E402
from scripts.private_clamd import PrivateClamd  # noqa: E402

MIB = 1024 * 1024


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for i in range(size_mib):
            # Every MiB differs a little, so nothing can be cached by content.
            f.write(i.to_bytes(8, "big") + block[8:])


def chunks(path: Path):
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


def ours(path: Path, url: str) -> float:
    started = time.perf_counter()
    verdict = clamd_scan(chunks(path), url=url)
    elapsed = time.perf_counter() - started
    assert not verdict.infected
    return elapsed


def clamdscan(path: Path, clamd: PrivateClamd) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "clamdscan",
            f"--config-file={clamd.dir / 'clamd.conf'}",
            "--stream",
            "--no-summary",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-gib", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doorito-scan-bench-") as tmp, PrivateClamd() as clamd:
        path = Path(tmp) / "sample.bin"
        make_file(path, args.size_mib)
        ours(path, clamd.url)  # warm the page cache and clamd
        times_ours, times_cli = [], []
        for _ in range(args.rounds):
            times_cli.append(clamdscan(path, clamd))
            times_ours.append(ours(path, clamd.url))
        size_mb = args.size_mib * MIB / 1e6
        cli = size_mb / statistics.median(times_cli)
        own = size_mb / statistics.median(times_ours)
        load = os.getloadavg()[0]
        print(f"{args.size_mib} MiB, {args.rounds} rounds, load {load:.1f}")
        print(f"clamdscan --stream      {cli:8.1f} MB/s (median)")
        print(f"Doorito INSTREAM client {own:8.1f} MB/s (median)  ratio {own / cli:.2f}x")
        if args.skip_gib:
            return
        path.unlink()
        path = Path(tmp) / "gib.bin"
        make_file(path, 1024)
        seconds = ours(path, clamd.url)
        rate = 1073.7 / seconds
        print(f"1 GiB scan (upload answered -> stored): {seconds:.2f} s ({rate:.0f} MB/s)")


if __name__ == "__main__":
    main()
