"""Bad input to every command: exit status 2, one line naming what is wrong, no traceback,
and nothing created (the working directory is compared before and after).

One row per class of bad input and command.  Rows run in-process through
:func:`aimcflow.flows.cli.main` (argparse's own errors surface there as ``SystemExit(2)``
with the same one-line message); a few rows also run as real subprocesses, to show that no
traceback reaches stderr and nothing hangs.  ``{name}`` in an argument is replaced by the
path of a fixture file made in the working directory by :func:`make_fixtures`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aimcflow.flows.cli import main

K = "00112233445566778899aabbccddeeff"  # a valid 16-byte key / nonce
ASCON = ["ascon", "encrypt", "--key", K, "--nonce", K]
RUN = ["run", "--config", "ideal", "--images", "5"]

# (id, argv, words the message must contain)
ROWS: list[tuple[str, list[str], str]] = [
    # --- output places, every writing command
    ("run-out-is-file", [*RUN, "--out", "{afile}"], "exists and is not a directory"),
    ("run-out-under-file", [*RUN, "--out", "{afile}/sub"], "is a file, not a directory"),
    ("run-out-unwritable", [*RUN, "--out", "{unwritable}/x"], "cannot write there"),
    ("vmm-out-is-file", ["vmm", "--out", "{afile}"], "exists and is not a directory"),
    ("vmm-out-unwritable", ["vmm", "--out", "{unwritable}/x"], "cannot write there"),
    ("sweep-out-under-file", ["sweep", "--set", "adc.bits=4", "--out", "{afile}/x"], "is a file"),
    ("generate-out-is-file", ["generate", "--out", "{afile}"], "exists and is not a directory"),
    ("generate-out-unwritable", ["generate", "--out", "{unwritable}/g"], "cannot write there"),
    ("synth-out-under-file", ["synth", "--out", "{afile}/x"], "is a file, not a directory"),
    (
        "train-out-unwritable",
        ["train", "--device", "ideal", "--out", "{unwritable}/t"],
        "cannot write there",
    ),
    (
        "tvla-out-is-file",
        ["tvla", "--design", "plain_mac", "--secret", "weight", "--out", "{afile}"],
        "exists and is not a directory",
    ),
    (
        "vectors-out-is-dir",
        ["vectors", "mgmt", "--in", "{mgmt_npz}", "--out", "{adir}"],
        "is a directory",
    ),
    (
        "vectors-out-is-in",
        ["vectors", "mgmt", "--in", "{mgmt_npz}", "--out", "{mgmt_npz}", "--force"],
        "is the input file too",
    ),
    (
        "vectors-out-unwritable",
        ["vectors", "mgmt", "--in", "{mgmt_npz}", "--out", "{unwritable}/o.npz"],
        "cannot write there",
    ),
    ("ascon-out-is-dir", [*ASCON, "--in", "{afile}", "--out", "{adir}"], "is a directory"),
    ("ascon-out-under-file", [*ASCON, "--in", "{afile}", "--out", "{afile}/x"], "is a file"),
    ("ascon-out-is-in", [*ASCON, "--in", "{afile}", "--out", "{afile}", "--force"], "input file"),
    # --- configs
    ("config-not-utf8", ["generate", "--config", "{latin1_toml}"], "not UTF-8"),
    ("config-empty", ["lint", "--config", "{empty_toml}"], "holds no settings"),
    ("config-bool-for-int", ["generate", "--config", "{bool_toml}"], "nmpu.lanes = true is a"),
    ("config-bool-dac-bits", ["vmm", "--config", "{dac_bool_toml}"], "dac.bits = true is a"),
    ("config-emin-gt-emax", [*RUN[:1], "--config", "{emin_toml}"], "e_min (5) must be <= e_max"),
    ("config-missing", ["synth", "--config", "nope.toml"], "config 'nope.toml' not found"),
    # --- model and data files
    ("model-text-file", [*RUN, "--model", "{text_pt}"], "not a torch model file"),
    ("model-runs-code", [*RUN, "--model", "{evil_pt}"], "without running code"),
    ("model-lstm", [*RUN, "--model", "{lstm_pt}"], "a whole pickled module is one"),
    ("data-text-as-npz", [*RUN[:1], "--data", "{text_npz}"], "not an .npz archive"),
    ("data-npy-as-npz", [*RUN[:1], "--data", "{npy_npz}"], "single-array .npy"),
    ("vectors-text-as-npz", ["vectors", "mgmt", "--in", "{text_npz}", "--out", "o.npz"], ".npz"),
    ("vectors-npy-as-npz", ["vectors", "nmpu", "--in", "{npy_npz}", "--out", "o.npz"], ".npy"),
    # --- sizes above their documented bounds
    ("vectors-R-100000", ["vectors", "mgmt", "--in", "{big_npz}", "--out", "o.npz"], "R <= 1024"),
    ("vmm-rows-100000", ["vmm", "--rows", "100000"], "--rows 100000 is too large"),
    ("run-repeats-100000", [*RUN, "--repeats", "100000"], "1..1000"),
    ("run-65-drift-times", [*RUN, "--drift", ",".join(["1"] * 65)], "at most 64"),
    (
        "tvla-lanes-100000",
        ["tvla", "--design", "plain_mac", "--secret", "weight", "--lanes", "100000"],
        "1..256",
    ),
    (
        "tvla-traces-1e9",
        ["tvla", "--design", "plain_mac", "--secret", "weight", "--traces", "1000000000"],
        "4..10000000",
    ),
    (
        "train-rtl-steps-1e9",
        ["train", "--device", "ideal", "--rtl-steps", "1000000000"],
        "0..20000",
    ),
    ("train-lr-1e6", ["train", "--device", "ideal", "--lr", "1e6"], "(0, 100]"),
    (
        "sweep-2025-points",
        [
            "sweep",
            "--set",
            "adc.bits=" + ",".join(map(str, range(2, 17))),
            "--set",
            "dac.bits=" + ",".join(map(str, range(2, 17))),
            "--set",
            "mgmt.e_min=-4,-3,-2,-1,0,1,2,3,4",
        ],
        "allowed: at most 2000 points",
    ),
    ("sweep-workers-1000", ["sweep", "--set", "adc.bits=4", "--workers", "1000"], "--workers"),
    ("synth-lanes-100", ["synth", "--lanes", "100"], "lane counts must be 1 .. 64"),
    (
        "ascon-key-dev-zero",
        [*ASCON[:2], "--key", "@/dev/zero", *ASCON[4:], "--in", "{afile}", "--out", "c"],
        "longer than 16 bytes",
    ),
    ("ascon-in-dev-zero", [*ASCON, "--in", "/dev/zero", "--out", "c"], "longer than 256 MiB"),
    # --- contradictions and bad values
    ("run-rtl-and-no-rtl", [*RUN, "--levels", "analog-rtl", "--no-rtl"], "--no-rtl"),
    ("run-unknown-level", [*RUN, "--levels", "bogus"], "unknown level 'bogus'"),
    (
        "sweep-scheduler-garbage",
        ["sweep", "--set", "adc.bits=4", "--scheduler", "garbage"],
        "not a scheduler address",
    ),
    (
        "sweep-two-drift-times",
        ["sweep", "--set", "adc.bits=4", "--drift", "1h,1d"],
        "one drift time",
    ),
    (
        "vectors-unknown-block",
        ["vectors", "bogus", "--in", "{afile}", "--out", "o.npz"],
        "unknown block 'bogus'",
    ),
    ("lint-unknown-block", ["lint", "--blocks", "bogus"], "unknown block(s) bogus"),
    (
        "ascon-short-key",
        [*ASCON[:2], "--key", "00", *ASCON[4:], "--in", "{afile}", "--out", "c"],
        "keys are 16 bytes",
    ),
    ("unknown-command", ["bogus"], "invalid choice: 'bogus'"),
    # --- sweeps and per-layer periphery ([[layer]] entries)
    (
        "sweep-repeats-0",
        ["sweep", "--set", "adc.bits=4", "--repeats", "0"],
        "give an integer in 1..100",
    ),
    ("sweep-unknown-grid", ["sweep", "--grid", "bogus"], "--grid bogus: no such grid; allowed"),
    (
        "run-layer-names-no-layer",
        [*RUN[:2], "{layer_nolayer_toml}", *RUN[3:]],
        "[[layer]] entry 0 (name = 'fc9') names no analog layer",
    ),
    (
        "run-layer-index-no-layer",
        [*RUN[:2], "{layer_index9_toml}", *RUN[3:]],
        "[[layer]] entry 0 (index = 9) names no analog layer",
    ),
    (
        "run-layer-value-out-of-range",
        [*RUN[:2], "{layer_adc40_toml}", *RUN[3:]],
        "[[layer]] entry 0: adc.bits = 40 is out of range",
    ),
    ("run-layer-no-key", [*RUN[:2], "{layer_nokey_toml}", *RUN[3:]], "give exactly one of name"),
    (
        "sweep-per-layer-out-of-range",
        ["sweep", "--per-layer", "adc.bits=4,40"],
        "--per-layer adc.bits=40",
    ),
    (
        "sweep-per-layer-unknown-key",
        ["sweep", "--per-layer", "tile.rows=4"],
        "not a per-layer parameter; allowed: adc.bits",
    ),
    (
        "sweep-per-layer-and-set",
        ["sweep", "--per-layer", "adc.bits=4", "--set", "dac.bits=4"],
        "--set and --per-layer: give one of them",
    ),
]

# rows also run as real processes: no traceback on stderr, and no hang
SUBPROCESS_ROWS = (
    "run-out-is-file",
    "sweep-scheduler-garbage",
    "ascon-key-dev-zero",
    "vectors-npy-as-npz",
    "config-not-utf8",
)


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def make_fixtures(d: Path) -> dict[str, str]:
    """Every fixture file the rows name, made in ``d``; returns {name: relative path}."""
    import torch
    from torch import nn

    (d / "afile").write_text("x")
    (d / "adir").mkdir()
    if os.geteuid() == 0:  # root writes through permissions; sysfs refuses even root
        unwritable = "/sys"
    else:
        (d / "ro").mkdir()
        (d / "ro").chmod(0o555)
        unwritable = "ro"
    (d / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (d / "empty.toml").write_text("")
    (d / "bool.toml").write_text('name = "b"\n[nmpu]\nlanes = true\n')
    (d / "dacbool.toml").write_text('name = "b"\n[dac]\nbits = true\n')
    (d / "emin.toml").write_text('name = "m"\n[mgmt]\ne_min = 5\ne_max = 1\n')
    (d / "nolayer.toml").write_text('name = "l"\n[[layer]]\nname = "fc9"\nadc.bits = 6\n')
    (d / "index9.toml").write_text('name = "l"\n[[layer]]\nindex = 9\nadc.bits = 6\n')
    (d / "adc40.toml").write_text('name = "l"\n[[layer]]\nindex = 0\nadc.bits = 40\n')
    (d / "nokey.toml").write_text('name = "l"\n[[layer]]\nadc.bits = 6\n')
    (d / "text.pt").write_text("hello, not a model\n")
    torch.save({"w": _Payload(d / "PWNED")}, d / "evil.pt")
    torch.save(nn.Sequential(nn.LSTM(64, 10)), d / "lstm.pt")
    (d / "text.npz").write_text("x_train,y_train\n1,2\n")
    np.save(d / "a.npy", np.zeros(3))
    (d / "a.npy").rename(d / "npy.npz")
    np.savez(
        d / "big.npz",
        x=np.zeros((2, 100_000), np.int64),
        w=np.zeros((100_000, 4), np.int64),
        shift=np.int64(0),
    )
    np.savez(
        d / "mgmt.npz",
        x=np.zeros((2, 4), np.int64),
        w=np.zeros((4, 4), np.int64),
        shift=np.int64(0),
    )
    return {
        "afile": "afile",
        "adir": "adir",
        "unwritable": unwritable,
        "latin1_toml": "latin1.toml",
        "empty_toml": "empty.toml",
        "bool_toml": "bool.toml",
        "dac_bool_toml": "dacbool.toml",
        "emin_toml": "emin.toml",
        "layer_nolayer_toml": "nolayer.toml",
        "layer_index9_toml": "index9.toml",
        "layer_adc40_toml": "adc40.toml",
        "layer_nokey_toml": "nokey.toml",
        "text_pt": "text.pt",
        "evil_pt": "evil.pt",
        "lstm_pt": "lstm.pt",
        "text_npz": "text.npz",
        "npy_npz": "npy.npz",
        "big_npz": "big.npz",
        "mgmt_npz": "mgmt.npz",
    }


def _snapshot(d: Path) -> dict[str, float]:
    return {str(p.relative_to(d)): p.stat().st_mtime for p in d.rglob("*")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-inputs")
    names = make_fixtures(d)
    yield d, names
    ro = d / "ro"
    if ro.exists():
        ro.chmod(0o755)


def run_row(argv: list[str], d: Path, names: dict[str, str]) -> tuple[int, str]:
    """Run one row in-process in ``d``; returns (exit status, stderr)."""
    import contextlib
    import io

    argv = [a.format(**names) for a in argv]
    err = io.StringIO()
    old = Path.cwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse's errors
                rc = exc.code
    finally:
        os.chdir(old)
    return rc, err.getvalue()


@pytest.mark.parametrize("argv,words", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(argv, words, workdir):
    d, names = workdir
    before = _snapshot(d)
    rc, err = run_row(argv, d, names)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("aimcflow"), err
    assert words in lines[0], err
    assert "Traceback" not in err and "allow_pickle" not in err
    assert _snapshot(d) == before  # nothing created, nothing overwritten
    assert not (d / "PWNED").exists()


@pytest.mark.parametrize("row", SUBPROCESS_ROWS)
def test_bad_input_in_a_real_process(row, workdir):
    d, names = workdir
    argv, words = next((r[1], r[2]) for r in ROWS if r[0] == row)
    before = _snapshot(d)
    proc = subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", *(a.format(**names) for a in argv)],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _snapshot(d) == before
