"""Refresh the portal's vendored front-end assets from their npm packages.

Run by hand when an asset should change (`make vendor`), never by the run or
test commands: the copied files are committed, so Doorito needs no Node and
no network to run, and its pages load nothing from any other host.

For each package in ASSETS: `npm pack name@version` into a temporary folder,
unpack it, copy the named dist files and the licence into
`frontend/static/frontend/vendor/<dir>/` (without their source-map comments),
and record name, version and each file's sha256 in `frontend/static/frontend/vendor/manifest.json`.
`python scripts/vendor_assets.py --check` only verifies that the committed
files match the manifest (a test runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "frontend" / "static" / "frontend" / "vendor"
MANIFEST = VENDOR / "manifest.json"

# package, pinned version, target folder, {file in the package: name in the folder}
ASSETS = [
    (
        "htmx.org",
        "2.0.8",
        "htmx",
        {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "LICENSE"},
    ),
    (
        "uppy",
        "6.0.1",
        "uppy",
        {
            "dist/uppy.min.js": "uppy.min.js",
            "dist/uppy.min.css": "uppy.min.css",
            "LICENSE": "LICENSE",
        },
    ),
    (
        "@picocss/pico",
        "2.1.1",
        "pico",
        {"css/pico.min.css": "pico.min.css", "LICENSE.md": "LICENSE.md"},
    ),
]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def drop_source_map_reference(path: Path) -> None:
    """Remove the `sourceMappingURL` comment: the maps are not vendored, and
    `collectstatic`'s manifest storage refuses a reference to a missing file."""
    if path.suffix not in (".js", ".css"):
        return
    text = path.read_text(encoding="utf-8")
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not line.lstrip().startswith(("//# sourceMappingURL=", "/*# sourceMappingURL="))
    ]
    path.write_text("".join(kept), encoding="utf-8")


def fetch(package: str, version: str, workdir: Path) -> Path:
    """Unpacked `package@version` from the npm registry (no install scripts run)."""
    out = subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    target = workdir / f"unpacked-{out}"
    with tarfile.open(workdir / out) as tar:
        tar.extractall(target, filter="data")
    return target / "package"


def refresh() -> dict:
    manifest: dict = {"assets": []}
    with tempfile.TemporaryDirectory() as tmp:
        for package, version, folder, files in ASSETS:
            source = fetch(package, version, Path(tmp))
            dest = VENDOR / folder
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            recorded = {}
            for src_name, dst_name in files.items():
                shutil.copyfile(source / src_name, dest / dst_name)
                drop_source_map_reference(dest / dst_name)
                recorded[f"{folder}/{dst_name}"] = sha256_of(dest / dst_name)
            manifest["assets"].append({"package": package, "version": version, "files": recorded})
            print(f"{package}@{version} -> {dest.relative_to(ROOT)}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check() -> list[str]:
    """Problems between the manifest, the pins above and the files on disk."""
    problems = []
    manifest = json.loads(MANIFEST.read_text())
    pinned = {(p, v) for p, v, _, _ in ASSETS}
    recorded = {(a["package"], a["version"]) for a in manifest["assets"]}
    if pinned != recorded:
        problems.append(f"manifest {sorted(recorded)} differs from the pins {sorted(pinned)}")
    for asset in manifest["assets"]:
        for name, digest in asset["files"].items():
            path = VENDOR / name
            if not path.exists():
                problems.append(f"{name} is missing")
            elif sha256_of(path) != digest:
                problems.append(f"{name} does not match its sha256 in the manifest")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not download")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    refresh()
    return 0


if __name__ == "__main__":
    sys.exit(main())
