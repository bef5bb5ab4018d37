"""``aimcflow vectors spg``: the SPEC.md file contract, golden and Verilator, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.flows.cli import main
from aimcflow.models.periphery import spg

ROWS, COLS = 33, 10  # the size tests/test_spg_cosim.py builds: the Verilator build is shared


def _inputs(V=120, bl=13, key=5, **over):
    r = np.random.default_rng(key)
    a = {
        "x": r.integers(-128, 128, (V, ROWS)),
        "d": r.integers(-128, 128, (V, COLS)),
        "gain_x": r.integers(0, 3 * 256, V),
        "gain_d": r.integers(0, 3 * 256, V),
        "bl": np.int64(bl),
        "seed": np.int64(key),
    }
    a.update(over)
    return a


def _write(tmp_path, name, arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_golden_file_matches_model(tmp_path):
    src = _write(tmp_path, "in.npz", _inputs())
    out = tmp_path / "out.npz"
    assert main(["vectors", "spg", "--in", str(src), "--out", str(out), "--sim", "golden"]) == 0
    a = _inputs()
    want = spg.generate(a["x"], a["d"], a["gain_x"], a["gain_d"], 13, 5)
    with np.load(out) as f:
        assert sorted(f.files) == ["col_pulses", "col_sign", "row_pulses", "row_sign"]
        assert f["row_pulses"].shape == (120, 13, ROWS) and f["row_pulses"].dtype == np.int64
        np.testing.assert_array_equal(f["row_pulses"], want.row_pulses)
        np.testing.assert_array_equal(f["col_pulses"], want.col_pulses)
        np.testing.assert_array_equal(f["row_sign"], want.row_sign)
        assert set(np.unique(f["col_sign"])) <= {-1, 1}


@pytest.mark.cosim
def test_verilator_file_equals_golden_file(tmp_path):
    src = _write(tmp_path, "in.npz", _inputs(V=300, bl=7, key=0))
    g, v = tmp_path / "g.npz", tmp_path / "v.npz"
    assert main(["vectors", "spg", "--in", str(src), "--out", str(g), "--sim", "golden"]) == 0
    assert main(["vectors", "spg", "--in", str(src), "--out", str(v)]) == 0
    with np.load(g) as fg, np.load(v) as fv:
        for k in fg.files:
            np.testing.assert_array_equal(fv[k], fg[k])


@pytest.mark.parametrize(
    "over,msg",
    [
        ({"bl": np.int64(0)}, "bl = 0 is out of range; allowed: 1 .. 255"),
        ({"bl": np.int64(256)}, "bl = 256 is out of range"),
        ({"gain_x": np.full(120, 1 << 16)}, "gain_x = 65536 overflows the translator"),
        ({"d": np.full((120, COLS), -129)}, "d holds -129, outside the signed 8-bit range"),
        ({"seed": np.int64(-1)}, "seed -1 is out of range"),
        ({"gain_d": np.zeros(7, np.int64)}, "field gain_d has shape (7,)"),
        ({"x": np.zeros((120, ROWS), np.int32)}, "field x has dtype int32"),
    ],
)
def test_bad_vectors_exit_2_without_output(tmp_path, capsys, over, msg):
    src = _write(tmp_path, "in.npz", _inputs(**over))
    out = tmp_path / "out.npz"
    assert main(["vectors", "spg", "--in", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not out.exists()
