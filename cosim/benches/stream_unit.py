"""Shared cocotb bench machinery of the stream units between layers (residual add,
pooling): one ``i`` source, one ``load`` source, one ``o`` sink, a job = registers + a
batch of vectors, and the constrained-random loop of both benches.

A subclass of :class:`UnitTB` says how a job becomes beats (:meth:`UnitTB.input_fields`,
:meth:`UnitTB.load_fields`), how many output beats one vector gives
(:meth:`UnitTB.beats_per_vector`) and how received beats compare with the golden
model (:meth:`UnitTB.check`); :func:`random_run` does the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from aimcflow.cosim.packing import port_codecs
from aimcflow.cosim.streams import TB, ReadyPromise, Scoreboard, StreamSink, StreamSource


class UnitTB(TB):
    """Clock, reset, the ``i``/``load`` sources and the ``o`` sink of one unit.

    ``prefix`` names the unit's ports in a bigger toplevel (``res_`` -> ``res_i__valid``
    ...), so the same agents drive the unit inside a level-4 wrapper.  ``promise``: the
    per-cycle monitor of ``i.ready = ~o.valid | o.ready``
    (:class:`~aimcflow.cosim.streams.ReadyPromise`), for a unit whose docstring promises
    it; :func:`random_run` reports its counts."""

    def __init__(self, dut, component, seed: int, p_valid: float, p_ready: float, prefix: str = ""):
        super().__init__(dut, seed)
        self.codec = port_codecs(component, ("i", "o", "load"))
        self.src = self.add(StreamSource(dut, f"{prefix}i", self.rng, p_valid))
        self.load = self.add(StreamSource(dut, f"{prefix}load", self.rng, p_valid))
        self.snk = self.add(StreamSink(dut, f"{prefix}o", self.rng, p_ready))
        self.promise = self.add(ReadyPromise(dut, f"{prefix}i", f"{prefix}o"))

    # --- what a subclass defines -------------------------------------------------
    def input_fields(self, job) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_fields(self, job) -> list[dict[str, int]]:
        raise NotImplementedError

    def vectors(self, job) -> int:
        raise NotImplementedError

    def beats_per_vector(self, job) -> int:
        raise NotImplementedError

    def check(self, sb: Scoreboard, job, exp: np.ndarray) -> int:
        """Compare the complete vectors received so far; return mismatching ones."""
        raise NotImplementedError

    # --- shared --------------------------------------------------------------------
    def complete(self, job) -> int:
        """Vectors whose output beats have all arrived."""
        return len(self.snk.words) // self.beats_per_vector(job)

    async def program(self, job) -> None:
        beats = self.load_fields(job)
        fields = {k: np.array([b[k] for b in beats]) for k in beats[0]}
        self.load.send(self.codec["load"].pack(fields))
        await self.run(lambda: self.load.idle, max_cycles=1000 * len(beats) + 100)

    async def stream(self, job, stop_after: int | None = None) -> int:
        """Send the job's vectors; cycles until all (or ``stop_after``) output beats
        arrived.  The sink's word list is cleared first."""
        self.snk.words.clear()
        fields = self.input_fields(job)
        self.src.send(self.codec["i"].pack(fields))
        want = self.vectors(job) * self.beats_per_vector(job) if stop_after is None else stop_after
        n_in = len(next(iter(fields.values())))
        return await self.run(lambda: len(self.snk.words) >= want, 200 * n_in + 1000)


async def random_run(
    tb: UnitTB,
    p: dict[str, Any],
    name: str,
    new_job: Callable[[int], Any],
    coverage: Callable[[Any, np.ndarray], dict[str, int]],
    measure_job: Callable[[], Any] | None,
    ideal_cycles: Callable[[Any], int],
) -> dict[str, Any]:
    """Jobs from ``new_job(job_index)`` until ``p['vectors']`` vectors were compared.

    The first job with >= 2 vectors is cut by a reset mid-stream (its delivered prefix
    checked, then reprogrammed and rerun) unless ``p['reset_mid']`` is false.  With
    ``p['measure']`` the ``measure_job()`` runs at full rate and its cycles are compared
    with ``ideal_cycles(job)``.  ``coverage(job, expected)`` counts corners (summed over
    jobs).  Returns the result dict; mismatches are in ``errors``."""
    total = int(p.get("vectors", 1000))
    sb = Scoreboard(name)
    tb.start_clock()
    await tb.reset()
    t_start = time.perf_counter()
    result: dict[str, Any] = {}
    cov: dict[str, int] = {}
    job_i = 0
    reset_done = not p.get("reset_mid", True)
    while sb.compared < total:
        job = new_job(job_i)
        job_i += 1
        exp = job.expected()
        for k, v in coverage(job, exp).items():
            cov[k] = cov.get(k, 0) + int(v)
        await tb.program(job)
        V = tb.vectors(job)
        if not reset_done and V >= 2:
            cut = (V // 2) * tb.beats_per_vector(job) + 1
            await tb.stream(job, stop_after=cut)
            tb.check(sb, job, exp)  # the vectors delivered before the reset
            await tb.reset()
            await tb.program(job)  # registers are reset too
            reset_done = True
            result["reset_after_beats"] = cut
        await tb.stream(job)
        tb.check(sb, job, exp)
        if sb.mismatches:
            break
    if p.get("measure") and measure_job is not None:
        job = measure_job()
        tb.src.p_valid = tb.snk.p_ready = 1.0
        await tb.program(job)
        cycles = await tb.stream(job)
        tb.check(sb, job, job.expected())
        ideal = ideal_cycles(job)
        beats = len(next(iter(tb.input_fields(job).values())))
        result.update(
            measure_beats=beats, cycles=cycles, ideal_cycles=ideal, efficiency=ideal / cycles
        )
    result.update(
        vectors=sb.compared,
        mismatches=sb.mismatches,
        errors=sb.errors,
        jobs=job_i,
        rtl_cycles=tb.cycle,
        handshake_checked=tb.promise.checked,
        handshake_violations=tb.promise.violations,
        wall_s=time.perf_counter() - t_start,
        **cov,
    )
    return result
