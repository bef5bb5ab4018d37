"""The SFU through the command line: ``vectors sfu`` (Verilator equals golden, every op;
bad input refused with exit status 2 and no OUT file), ``generate`` and ``lint`` by name."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.cosim.benches.sfu import ln_requant
from aimcflow.models.config import load_config
from aimcflow.models.periphery.sfu import OPS, SfuParams
from flow_helpers import cli, write_config


def _inputs(op: str, rng) -> dict:
    gp = SfuParams()
    V, K = 12, 19
    x = rng.integers(-128, 128, size=(V, K))
    b = np.zeros((K, 1), np.int64)
    mult, shift, wide = 1, 0, 0
    if op == "matmul":
        b = rng.integers(-128, 128, size=(K, 11))
        mult, shift, wide = 23001, 20, 1
    elif op in ("softmax", "layernorm"):
        x = rng.integers(-(1 << 15), 1 << 15, size=(V, K)) >> rng.integers(0, 15, size=(V, 1))
        if op == "layernorm":
            mult, shift = ln_requant(4, gp)
    scalars = {"op": OPS.index(op), "mult": mult, "shift": shift, "wide": wide}
    return {"x": x, "b": b, **{k: np.int64(v) for k, v in scalars.items()}}


def _run(tmp_path, arrays, name: str, *extra) -> int:
    conf = write_config(load_config("baseline-ftj"), tmp_path / "cfg.toml")
    np.savez(tmp_path / f"{name}-in.npz", **arrays)
    return cli(
        "vectors",
        "sfu",
        "--config",
        conf,
        "--in",
        tmp_path / f"{name}-in.npz",
        "--out",
        tmp_path / f"{name}.npz",
        *extra,
    )


@pytest.mark.cosim
def test_vectors_sfu_verilator_equals_golden(tmp_path):
    rng = np.random.default_rng(4)
    for op in OPS:
        arrays = _inputs(op, rng)
        assert _run(tmp_path, arrays, f"{op}-golden", "--sim", "golden") == 0
        assert _run(tmp_path, arrays, f"{op}-rtl") == 0
        with np.load(tmp_path / f"{op}-golden.npz") as g, np.load(tmp_path / f"{op}-rtl.npz") as r:
            assert g.files == ["y"] and r.files == ["y"]
            assert g["y"].dtype == np.int64
            np.testing.assert_array_equal(r["y"], g["y"], err_msg=op)
            assert np.unique(g["y"]).size > 3, op  # not a degenerate (all-saturated) file


@pytest.mark.parametrize(
    "change, words",
    [
        ({"op": np.int64(4)}, "op 4; allowed: 0 (matmul)"),
        (
            {"op": np.int64(1), "x": np.zeros((2, 65), np.int64), "b": np.zeros((65, 1), np.int64)},
            "row length 65; allowed: 1 .. 64",
        ),
        ({"op": np.int64(3), "x": np.full((2, 19), 128, np.int64)}, "outside signed 8-bit"),
        ({"op": np.int64(2), "shift": np.int64(99)}, "shift: value 99 outside 0 .. 38"),
        ({"wide": np.int64(2)}, "wide 2; allowed: 0 or 1"),
        ({"b": np.zeros((5, 2), np.int64)}, "field b has shape (5, 2) but x says K = 19"),
    ],
)
def test_vectors_sfu_bad_input_exit_2_no_output(change, words, tmp_path, capsys):
    arrays = {**_inputs("matmul", np.random.default_rng(0)), **change}
    # default --sim verilator: validation happens before any build or simulation
    assert _run(tmp_path, arrays, "bad") == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "bad.npz").exists()


def test_generate_and_lint_sfu_by_name(tmp_path, capsys):
    out = tmp_path / "rtl"
    assert cli("generate", "--blocks", "sfu", "--out", out) == 0
    v = next(out.glob("*sfu*.v")).read_text()
    assert "module aimcflow_sfu" in v
    assert cli("lint", "--blocks", "sfu") == 0
    assert "0 warning(s)" in capsys.readouterr().out
