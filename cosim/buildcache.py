"""The build cache shared by every simulator build (Verilator, Icarus, the TVLA harness):
``<cache>/<kind>/<label>`` keyed by a hash of everything that changes a build, filled once
under a file lock, with ``BUILD_OK`` written last so an interrupted build is redone."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aimcflow.models.io import cache_dir


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_key(items: Mapping[str, Any]) -> str:
    """The 20-hex-digit build key of ``items`` (everything that changes a build)."""
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:20]


def cached_dir(kind: str, label: str, fill: Callable[[Path], str]) -> tuple[Path, bool]:
    """``<cache>/<kind>/<label>``, filled once: under the label's lock, a directory without
    ``BUILD_OK`` is emptied and ``fill(dir)`` run; its return text is written to
    ``BUILD_OK`` last.  Returns the directory and whether it was already built."""
    bdir = cache_dir() / kind / label
    ok_marker = bdir / "BUILD_OK"
    with _locked(cache_dir() / kind / f"{label}.lock"):
        if ok_marker.exists():
            return bdir, True
        shutil.rmtree(bdir, ignore_errors=True)
        bdir.mkdir(parents=True)
        ok_marker.write_text(fill(bdir))
    return bdir, False


def runner_build(runner: Any, tool: str, toplevel: str, log: Path, **kw: Any) -> None:
    """``runner.build(..., log_file=log)``; a failure (cocotb raises CalledProcessError
    or exits) becomes a :class:`RuntimeError` with the log's tail."""
    try:
        runner.build(hdl_toplevel=toplevel, log_file=log, **kw)
    except (SystemExit, Exception) as exc:
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(
            f"{tool} build of {toplevel} failed ({exc}); log {log}:\n{tail}"
        ) from None
