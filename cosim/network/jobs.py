"""What both sides of level 4 agree on about one column job: the recorded tile answers,
the beat words of its streams, the ideal-cycle rule and the output-decode rule.

Everything here is plain numpy on packed payload words (:mod:`aimcflow.cosim.packing`);
nothing needs a simulator.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.golden import ColumnJob, ColumnResult
from aimcflow.rtl.params import NmpuRtlParams
from aimcflow.rtl.protocol import groups, mgmt_reg_beats, nmpu_output_values, segment_beats

from ..benches.nmpu import Job, load_beats


class RecordingTile:
    """Wraps a level-3 tile callable and records, per management iteration, what it was
    asked and what it answered (the golden controller asks all still-active vectors of
    one iteration in one call)."""

    def __init__(self, tile) -> None:
        self.tile = tile
        self.calls: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, d, iteration, active):
        a, s = self.tile(d, iteration, active)
        idx = np.flatnonzero(active)
        if idx.size:
            k = int(iteration[idx[0]])
            if np.any(iteration[idx] != k):  # the golden controller never mixes iterations
                raise AssertionError("one tile call mixes management iterations")
            self.calls[k] = (idx, np.asarray(d)[idx], np.asarray(a)[idx], np.asarray(s)[idx])
        return a, s

    def live(self, v: int, V: int, d: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
        """Ask the tile for vector ``v`` only (codes ``d``, iteration ``k``)."""
        dd = np.zeros((V, d.shape[0]), dtype=np.int64)
        dd[v] = d
        it = np.zeros(V, dtype=np.int64)
        it[v] = k
        act = np.zeros(V, dtype=bool)
        act[v] = True
        a, s = self.tile(dd, it, act)
        return np.asarray(a)[v].astype(np.int64), bool(np.asarray(s)[v])


def x_segment_words(codec, x_lanes: int, x_segments) -> tuple[list[int], list[int]]:
    """The ``x`` stream's beat words of one column job, in segment order v0 t0, v0 t1, ...:
    each segment padded to whole beats of ``x_lanes`` values, ``last`` on its final beat.
    Also returns the beat count of each row tile's segment."""
    V = len(x_segments[0])
    per_t = []
    for xs in x_segments:
        per_t.append((codec.pack(segment_beats(xs, x_lanes)), groups(xs.shape[1], x_lanes)))
    words: list[int] = []
    for v in range(V):
        for w, nb in per_t:
            words.extend(w[v * nb : (v + 1) * nb])
    return words, [nb for _, nb in per_t]


def job_coefficients(job: ColumnJob) -> dict[str, np.ndarray]:
    """The NMPU coefficients of a column job as loaded into the RTL (fresh arrays, so a
    bench may alter them without touching the job)."""
    return {
        f: np.array(getattr(job, f), dtype=np.int64) for f in ("gain", "offset", "mult", "bias")
    }


def load_words(
    codec: dict, nrtl: NmpuRtlParams, job: ColumnJob, coef: dict[str, np.ndarray]
) -> tuple[list[int], list[int]]:
    """Packed ``nmpu_load`` and ``mgmt_load`` words of a column job with coefficients
    ``coef`` (:func:`job_coefficients`)."""
    T, C = coef["gain"].shape
    empty = Job(
        np.zeros((0, T, C), dtype=np.int64),
        np.zeros((0, T), dtype=np.int64),
        coef["gain"],
        coef["offset"],
        coef["mult"],
        coef["bias"],
        job.nmpu,
    )
    nw = codec["nmpu_load"].pack(load_beats(empty, nrtl))
    mw = codec["mgmt_load"].pack(mgmt_reg_beats(job.mgmt.noise, job.mgmt.bound_max_iter))
    return nw, mw


def ideal_cycles(load_beats: int, seg_beats: list[int], iters: np.ndarray, G: int) -> int:
    """Ideal cycles of one column job (see :mod:`aimcflow.cosim.network`): one per
    coefficient-load beat plus, per input segment of row tile ``t`` and management
    iteration, its ``seg_beats[t]`` DAC beats followed by ``G`` ADC beats.  ``iters``
    (V,T) are the iteration counts the RTL reported (0 = no retry)."""
    its = np.asarray(iters, dtype=np.int64)
    return load_beats + sum(int(np.sum(its[:, t] + 1)) * (nb + G) for t, nb in enumerate(seg_beats))


def last_flags_ok(codec: dict, lanes: int, job: ColumnJob, o_words: list[int]) -> bool:
    """``o.last`` is set on exactly each vector's final beat (``rtl/nmpu.py``)."""
    V, C = len(job.x_segments[0]), len(job.mult)
    G = groups(C, lanes)
    last = np.asarray(codec["o"].unpack(o_words[: V * G])["last"]).reshape(V, G)
    return bool(np.array_equal(last, np.tile(np.arange(G) == G - 1, (V, 1))))


def decode_result(
    codec: dict,
    lanes: int,
    job: ColumnJob,
    o_words: list[int],
    status_words: list[int],
    a: np.ndarray,
) -> ColumnResult:
    """The RTL's result of a column job from its ``o`` and ``status`` words: ``y`` (V,C)
    without padding lanes, and ``e``, ``iter``, ``sat_any`` (V,T) per segment; ``a`` are
    the tile's final ADC codes (V,T,C)."""
    V, T, C = len(job.x_segments[0]), len(job.x_segments), len(job.mult)
    y = nmpu_output_values(codec["o"].unpack(o_words[: V * groups(C, lanes)])["y"], C, lanes)
    s = codec["status"].unpack(status_words[: V * T])
    e, it, sat = (s[k].reshape(V, T) for k in ("e", "iter", "sat_any"))
    return ColumnResult(y.astype(np.int64), a.copy(), e, it, sat.astype(bool))
