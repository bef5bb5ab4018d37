"""Shared pytest setup.  Stream helpers for Amaranth testbenches live in
``tests/amaranth_streams.py``; cocotb benches live in ``cosim/`` and are built by
``aimcflow.cosim.runner``.  Long variants carry ``@pytest.mark.slow`` and run under
``make soak`` (``pytest -m slow``) only.

Tests that need a Debian tool carry a marker (``icarus``, ``osu018``).  Where the tool is
missing they are *deselected*, never silently skipped: the run prints which marker, why
and how to get the tool in its header, and lists the deselected tests at the end.
"""

import os
import shutil

import pytest

OSU018_DIR = "/usr/share/qflow/tech/osu018"


def missing_tools() -> dict[str, str]:
    """Marker -> why its tests cannot run here (empty when every tool is present)."""
    out = {}
    if not (shutil.which("iverilog") and shutil.which("vvp")):
        out["icarus"] = (
            "Icarus Verilog (iverilog, vvp) not on PATH; install the Debian package "
            "'iverilog' (make setup does when run as root)"
        )
    lib = os.path.join(OSU018_DIR, "osu018_stdcells.lib")
    if not (os.path.exists(lib) and shutil.which("sta") and shutil.which("iverilog")):
        out["osu018"] = (
            f"needs {lib} (Debian qflow-tech-osu018), OpenSTA 'sta' (Debian opensta) and "
            "iverilog (make setup installs them when run as root)"
        )
    try:
        import importlib.util

        have_ll = importlib.util.find_spec("librelane") is not None
    except ValueError:
        have_ll = False
    if not have_ll:
        out["librelane"] = (
            "the optional extra 'librelane' is not installed (pip install -e '.[librelane]')"
        )
    return out


def pytest_report_header(config):
    return [f"deselected: tests marked '{m}': {why}" for m, why in missing_tools().items()]


def pytest_collection_modifyitems(config, items):
    missing = missing_tools()
    if not missing:
        return
    keep, dropped = [], []
    for item in items:
        marks = [m for m in missing if item.get_closest_marker(m)]
        (dropped if marks else keep).append(item)
        if marks:
            config.stash.setdefault(_DESELECTED, []).append((item.nodeid, marks[0]))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


_DESELECTED = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    missing = missing_tools()
    if not missing:
        return
    tr = terminalreporter
    tr.section("tests deselected: tools missing")
    for m, why in missing.items():
        tr.write_line(f"marker '{m}': {why}")
    # under pytest-xdist the workers collect; the controller then only knows the reasons
    for nodeid, m in config.stash.get(_DESELECTED, []):
        tr.write_line(f"  deselected ({m}): {nodeid}")
