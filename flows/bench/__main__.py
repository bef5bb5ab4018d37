"""``make bench``: run every benchmark module of :mod:`aimcflow.flows.bench` (or those whose
names contain an argument) and print numbers; all of them also go to
``out/bench/results.json``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import aimcflow.flows.bench as bench_pkg
from aimcflow.flows.io import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    results = {}
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        mod = importlib.import_module(f"aimcflow.flows.bench.{name}")
        results[name] = mod.main()
        print(f"({name}: {time.perf_counter() - t0:.1f} s)")
    write_json_atomic("out/bench/results.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
