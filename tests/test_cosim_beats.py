"""The benches' vectorized beat builders agree with ``rtl/protocol.py`` (the protocol's one
definition) beat for beat; pure Python, no simulator."""

from __future__ import annotations

import numpy as np
from aimcflow.cosim.benches import mgmt as mbench
from aimcflow.cosim.benches import nmpu as nbench
from aimcflow.rtl import protocol
from aimcflow.rtl.params import MgmtRtlParams, NmpuRtlParams


def test_nmpu_input_beats_match_protocol():
    p = NmpuRtlParams(lanes=4, adc_bits=8)
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 127, size=(3, 2, 10), endpoint=True)  # C=10: lanes do not divide
    e = rng.integers(-4, 7, size=(3, 2), endpoint=True)
    ref = list(protocol.nmpu_input_beats(p, a, e))
    got = nbench.input_beats(a, e, p.lanes)
    assert len(ref) == len(got["e"]) == 3 * 2 * 3
    np.testing.assert_array_equal(got["a"], [b["a"] for b in ref])
    np.testing.assert_array_equal(got["e"], [b["e"] for b in ref])


def test_nmpu_outputs_decode_matches_protocol():
    rng = np.random.default_rng(1)
    V, C, lanes = 5, 7, 3
    G = -(-C // lanes)
    y = rng.integers(-100, 100, size=(V * G, lanes))
    last = np.tile(np.arange(G) == G - 1, V).astype(np.int64)
    ref = protocol.nmpu_outputs(
        [{"y": list(r), "last": int(lb)} for r, lb in zip(y, last, strict=True)], C, lanes
    )
    got, got_last = nbench.decode_outputs({"y": y, "last": last}, V, C, lanes)
    np.testing.assert_array_equal(got, ref)
    assert (got_last[:, -1] == 1).all()


def test_mgmt_beats_match_protocol():
    p = MgmtRtlParams(x_lanes=4, lanes=3, adc_bits=8)
    rng = np.random.default_rng(2)
    x = rng.integers(-100, 100, size=(2, 9))
    got = mbench.segment_beats(x, p.x_lanes)
    ref = [b for row in x for b in protocol.mgmt_x_beats(p, row)]
    np.testing.assert_array_equal(got["x"], [b["x"] for b in ref])
    np.testing.assert_array_equal(got["last"], [b["last"] for b in ref])
    a = rng.integers(-128, 127, size=8)
    got = mbench.answer_beats(a, True, p.lanes)
    ref = protocol.mgmt_answer_beats(p, a, True)
    for k in ("a", "sat_any", "last"):
        np.testing.assert_array_equal(got[k], [b[k] for b in ref])
