"""Share Verilator's run-time library objects between builds.

Every Verilated model links the same ``verilated*.o`` objects (about half of a build's
compile time here), compiled from the Verilator installation with flags that depend
only on the tracing choice.  After a build they are stored under
``<cache>/verilator/_runtime/<key>/``; before the ``make`` of the next build with the same
key they are copied into its directory with a fresh mtime, so ``make`` (whose rule makes
them depend on the freshly written ``Vtop.mk``) sees them up to date.  The cocotb main
``verilator.o`` includes the generated ``Vtop.h`` and is never shared.

Run as ``python -m aimcflow.cosim.objcache restore|save BUILD_DIR STORE_DIR``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

SHARED = (
    "verilated",
    "verilated_dpi",
    "verilated_vpi",
    "verilated_threads",
    "verilated_vcd_c",
    "verilated_fst_c",
    "verilated_saif_c",
)


def restore(build_dir: Path, store: Path) -> int:
    if not (store / "COMPLETE").exists():
        return 0
    n = 0
    for name in SHARED:
        for ext in (".o", ".d"):
            src = store / f"{name}{ext}"
            if src.exists():
                dst = build_dir / src.name
                shutil.copyfile(src, dst)
                os.utime(dst)  # newer than Vtop.mk, which make's rule depends on
                n += 1
    return n


def save(build_dir: Path, store: Path) -> int:
    if (store / "COMPLETE").exists():
        return 0
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rt-", dir=store.parent))
    n = 0
    for name in SHARED:
        for ext in (".o", ".d"):
            src = build_dir / f"{name}{ext}"
            if src.exists():
                shutil.copyfile(src, tmp / src.name)
                n += 1
    (tmp / "COMPLETE").write_text("")
    try:
        os.rename(tmp, store)  # atomic; loses harmlessly to a concurrent saver
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return n


def main(argv: list[str]) -> int:
    action, build_dir, store = argv
    fn = {"restore": restore, "save": save}[action]
    fn(Path(build_dir), Path(store))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
