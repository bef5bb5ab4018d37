"""The network run's own checks (models/nn/invariants.py): they pass on what the golden
models produce, and each fails on the bug it exists for -- a truncating NMPU shift, a
sat_any flag that misses a rail, a retry past bound_max_iter,
a saturated answer left final, a rescaled all-zero segment -- and the coverage goals
name the corner a run did not reach."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from aimcflow.models.config import load_config
from aimcflow.models.nn.golden import LayerTrace
from aimcflow.models.nn.invariants import coverage_goals, periphery_invariants
from aimcflow.models.periphery import nmpu as nmpu_model

CFG = load_config("stress").replace(**{"nmpu.acc_bits": 24, "nmpu.out_shift": 18})
V, T, C, ROWS = 40, 3, 6, 4


@dataclasses.dataclass
class Case:
    prog: SimpleNamespace
    trace: LayerTrace


def make_case(activation: str = "relu", seed: int = 0) -> Case:
    """One layer of 3 row tiles and 2 column tiles, traces as level 3 records them, with
    the outputs of the NMPU golden model (codes at both ADC rails, accumulators at both
    rails, an all-zero segment)."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (CFG.adc.bits - 1)), (1 << (CFG.adc.bits - 1)) - 1
    a = rng.integers(lo, hi + 1, (V, T, C))
    a[0, 0, 0], a[1, 1, 5] = lo, hi
    a[2] = hi  # drives the accumulator to its positive rail
    a[3] = lo
    K = 2
    e = rng.integers(CFG.mgmt.e_min, CFG.mgmt.e_max + 1, (V, T, K))
    rows = rng.integers(1, 50, (V, T * ROWS))
    rows[4, :ROWS] = 0  # an all-zero segment of row tile 0: codes 0, e = 0, no retry
    a[4, 0] = 0
    e[4, 0, :] = 0
    at_rail = np.stack([np.any((a[:, :, 3 * k : 3 * k + 3] == lo) | (a[:, :, 3 * k : 3 * k + 3] == hi), axis=2) for k in range(K)], axis=2)  # fmt: skip
    it = np.where(at_rail, CFG.mgmt.bound_max_iter, 0)  # saturated answers ran out of retries
    e = np.where(at_rail, np.maximum(e, CFG.mgmt.e_min + it), e)
    gain = rng.integers(-300, 300, (T, C))
    gain[:, 0] = 299  # with a[2] = hi: column 0 of vector 2 at the positive rail
    offset = rng.integers(-500, 500, (T, C))
    mult = rng.integers(1, 1 << 8, C)
    bias = rng.integers(-5, 5, C)
    lp = SimpleNamespace(
        name="L",
        index=0,
        out_shift=CFG.nmpu.out_shift,
        activation=activation,
        leaky_k=2,
        out_bits=CFG.nmpu.out_bits,
        out_signed=activation != "relu",
        row_slices=[(t * ROWS, (t + 1) * ROWS) for t in range(T)],
        col_slices=[(0, 3), (3, 6)],
        gain=gain,
        offset=offset,
        mult=mult,
        bias=bias,
    )
    p = nmpu_model.NmpuParams.from_config(
        CFG, activation=activation, out_signed=lp.out_signed, out_bits=lp.out_bits, leaky_k=2
    )
    y = np.concatenate(
        [
            nmpu_model.nmpu(
                a[:, :, c0:c1],
                e[:, :, k],
                gain[:, c0:c1],
                offset[:, c0:c1],
                mult[c0:c1],
                bias[c0:c1],
                p,
            )  # fmt: skip
            for k, (c0, c1) in enumerate(lp.col_slices)
        ],
        axis=1,
    )
    tr = LayerTrace("L")
    tr.a, tr.e, tr.rows, tr.out = [a], [e], [rows], [y]
    tr.sat = [at_rail[:, :, k].reshape(-1) for k in range(K)]
    tr.iters = [it[:, :, k].reshape(-1) for k in range(K)]
    return Case(SimpleNamespace(cfg=CFG, layers=[lp]), tr)


@pytest.mark.parametrize("activation", ["none", "relu", "leaky"])
def test_golden_results_pass(activation):
    case = make_case(activation)
    assert periphery_invariants(case.prog, [case.trace]) == []


def _only(violations: list[str], check: str) -> None:
    assert len(violations) == 1 and f"L: {check}:" in violations[0], violations


def test_truncating_output_shift_fails_the_float_check():
    case = make_case("none")
    lp, tr = case.prog.layers[0], case.trace
    p = nmpu_model.NmpuParams.from_config(CFG, activation="none", out_signed=True)
    acc = np.concatenate(
        [
            nmpu_model.accumulate(
                nmpu_model.affine(
                    tr.a[0][:, :, c0:c1], lp.gain[None, :, c0:c1], lp.offset[None, :, c0:c1]
                ),
                tr.e[0][:, :, k],
                p,
            )  # fmt: skip
            for k, (c0, c1) in enumerate(lp.col_slices)
        ],
        axis=1,
    )
    tr.out = [nmpu_model.saturate_output(((acc * lp.mult) >> p.out_shift) + lp.bias, p)]
    _only(periphery_invariants(case.prog, [tr]), "nmpu")


def test_sat_flag_missing_a_rail_fails():
    case = make_case()
    case.trace.sat[0][0] = False  # vector 0, row tile 0 has the most negative code
    case.trace.iters[0][0] = 0
    got = periphery_invariants(case.prog, [case.trace])
    assert any("adc sat_any" in v for v in got), got


def _retryable(tr) -> int:
    """A saturated answer of column tile 1 whose e is below e_max (could retry)."""
    e = tr.e[0][:, :, 1].reshape(-1)
    return int(np.flatnonzero(tr.sat[1] & (e < CFG.mgmt.e_max))[0])


@pytest.mark.parametrize(
    "change, check",
    [
        (lambda tr: tr.iters[0].__setitem__(np.flatnonzero(tr.sat[0])[0], 4), "mgmt iter"),
        (lambda tr: tr.iters[1].__setitem__(_retryable(tr), 1), "mgmt final"),
        (lambda tr: tr.e[0].__setitem__((4, 0, 0), 2), "mgmt zero"),
    ],
)
def test_management_properties(change, check):
    case = make_case()
    change(case.trace)
    got = periphery_invariants(case.prog, [case.trace])
    assert any(f"L: {check}:" in v for v in got), got


def test_coverage_goals_name_what_was_missed():
    case = make_case()
    layers = [{"adc_rail_codes": [0, 3], "acc_rail_sums": [2, 5], "bm_iterations_hist": [9, 4, 1]}]
    goals = ["adc_rails", "acc_rails", "bm_retries", "zero_segment"]
    missed = coverage_goals(goals, layers, [case.trace], case.prog)
    assert missed == ["coverage goal adc_rails not reached: final ADC codes at the rails [0, 3]"]
    layers[0]["bm_iterations_hist"] = [9, 4]
    case.trace.rows[0][4, :ROWS] = 1
    missed = coverage_goals(goals, layers, [case.trace], case.prog)
    assert [m.split(":")[0] for m in missed] == [
        "coverage goal adc_rails not reached",
        "coverage goal bm_retries not reached",
        "coverage goal zero_segment not reached",
    ]


def test_run_fails_on_an_unreached_goal_and_says_which(tmp_path, capsys):
    """``aimcflow run`` at level 3 exits 1 when the config's goals are not met (the digits
    MLP never feeds an all-zero segment to a 32-row tile), and says which goal; with the
    stress preset's own goals the same run passes."""
    import json

    from flow_helpers import cli, write_config

    cfg = load_config("stress")
    bad = write_config(
        cfg.replace(**{"verify.goals": ["acc_rails", "zero_segment"]}), tmp_path / "z.toml"
    )
    args = ["run", "--images", "20", "--levels", "analog-golden", "--force"]
    assert cli(*args, "--config", bad, "--out", tmp_path / "bad") == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "coverage goal zero_segment not reached: no all-zero input segment" in out
    res = json.loads((tmp_path / "bad" / "results.json").read_text())
    assert res["levels"]["analog_golden"]["invariant_violations"] == [
        "coverage goal zero_segment not reached: no all-zero input segment"
    ]
    assert cli(*args, "--config", "stress", "--out", tmp_path / "ok") == 0
    res = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert res["levels"]["analog_golden"]["invariant_violations"] == []
