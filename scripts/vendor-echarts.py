#!/usr/bin/env python3
"""Apache ECharts, vendored into the package: refresh it from the npm registry, or check it.

    scripts/vendor-echarts.py --check            # the shipped files match SHA256SUMS (no network)
    scripts/vendor-echarts.py                    # fetch the pinned version again and verify it
    scripts/vendor-echarts.py --version 6.2.0    # move to another version (then commit the files)

Fetching uses `npm pack` (the npm client; node is needed only here, never by `make run`):
the tarball's integrity is checked against the registry's `dist.integrity` (sha512) before
anything is unpacked, then `dist/echarts.min.js`, `LICENSE` and `NOTICE` are written to
app/web/static/vendor/echarts/ with a SHA256SUMS file naming the version. A refresh of the
pinned version must reproduce the committed sha256 exactly.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "app" / "web" / "static" / "vendor" / "echarts"
SUMS = TARGET / "SHA256SUMS"
FILES = {
    "package/dist/echarts.min.js": "echarts.min.js",
    "package/LICENSE": "LICENSE",
    "package/NOTICE": "NOTICE",
}


def read_sums() -> tuple[str, dict[str, str]]:
    """(version, {file: sha256}) from SHA256SUMS (``# echarts <version>`` then ``<hex>  <name>``)."""
    version, sums = "", {}
    for line in SUMS.read_text(encoding="utf-8").splitlines():
        if line.startswith("# echarts "):
            version = line.removeprefix("# echarts ").split()[0]
        elif line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return version, sums


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check() -> int:
    version, sums = read_sums()
    problems = []
    for name in FILES.values():
        path = TARGET / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sums.get(name) != sha256(path.read_bytes()):
            problems.append(f"{name}: sha256 differs from SHA256SUMS")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"echarts {version}: {len(FILES)} files match SHA256SUMS")
    return 1 if problems else 0


def npm(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(  # noqa: S603 - npm, with arguments this script builds
        ["npm", *args],  # noqa: S607 - the npm client on PATH, as a maintainer runs it
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    ).stdout


def fetch(version: str) -> dict[str, bytes]:
    integrity = json.loads(npm("view", f"echarts@{version}", "dist.integrity", "--json"))
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"unexpected integrity algorithm {algorithm!r}")
    with tempfile.TemporaryDirectory() as tmp:
        name = json.loads(npm("pack", f"echarts@{version}", "--json", cwd=Path(tmp)))[0]["filename"]
        tarball = (Path(tmp) / name).read_bytes()
    actual = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if actual != expected:
        raise SystemExit("the tarball does not match the registry's dist.integrity: refusing it")
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member, target in FILES.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise SystemExit(f"{member} is not in the package")
            found[target] = extracted.read()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check the shipped files (no network)")
    parser.add_argument("--version", help="the echarts version to vendor (default: the pinned one)")
    args = parser.parse_args()
    if args.check:
        return check()
    pinned, sums = read_sums() if SUMS.is_file() else ("", {})
    version = args.version or pinned
    if not version:
        raise SystemExit("no pinned version: give --version")
    files = fetch(version)
    if version == pinned:
        different = [name for name, data in files.items() if sums.get(name) != sha256(data)]
        if different:
            raise SystemExit(f"echarts {version} from the registry differs from SHA256SUMS: {different}")
    TARGET.mkdir(parents=True, exist_ok=True)
    lines = [f"# echarts {version} (npm package echarts, Apache-2.0): scripts/vendor-echarts.py"]
    for name, data in files.items():
        (TARGET / name).write_bytes(data)
        lines.append(f"{sha256(data)}  {name}")
    SUMS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"echarts {version}: wrote {', '.join(files)} and SHA256SUMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
