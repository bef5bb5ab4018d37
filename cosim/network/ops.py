"""Level 4 between the layers: residual adds, poolings and a transformer's steps
(attention, layernorm, GELU on the special-function unit; a constant add on the residual
unit; the token mean on the pooling unit) on their RTL (``rtl/residual.py``,
``rtl/pool.py``, ``rtl/sfu.py``, beside ``periphery_top`` in ``network_top``), every unit
output compared with its golden model on the same inputs.

:class:`OpRunner` drives the units through their prefixed ports (``res_*``, ``pool_*``,
``sfu_*``) with the units' own bench agents
(:class:`~aimcflow.cosim.benches.residual.ResidualTB`,
:class:`~aimcflow.cosim.benches.pool.PoolTB`, :class:`~aimcflow.cosim.benches.sfu.SfuTB`)
on the clock the network bench started.  A step is a sequence of unit requests
(:func:`aimcflow.models.nn.schedule.op_requests`: one for an add or a pool; a
transformer step's from :func:`aimcflow.models.nn.seq_steps.step_requests`, e.g.
attention's matmuls, softmax, matmuls), each one job: its registers go in on ``load``,
then its vectors on ``i`` (an add: ``a``, ``b`` flattened to one vector per image,
``ceil(N / lanes)`` beats; a pool: each window's in-map positions, one beat each, per
channel group; an SFU job: the beats of ``rtl/sfu.py``), and the RTL's outputs come back
on ``o``.  The RTL's output is what the step composes from and what the next request and
step read (true RTL in the loop); the golden answer (:func:`unit_requests.answer`) is only
compared with it, and the first request with a mismatch stops the run.

Ideal cycles of a job: one per load beat plus one per input beat (the input stream is
the bottleneck at initiation interval 1); the pipeline latency (``LATENCY``) and the
per-row compute of the SFU's softmax and layernorm (a row is taken, computed, then sent)
are not counted as ideal, as for the column jobs (:mod:`aimcflow.cosim.network`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aimcflow.models.nn.schedule import op_requests
from aimcflow.models.nn.unit_requests import AddRequest, PoolRequest, Request, answer, row_images
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams
from aimcflow.rtl.sfu import SfuRtlParams

from ..benches import pool as pool_bench
from ..benches import residual as res_bench
from ..benches import sfu as sfu_bench
from ..postops_top import PREFIXES
from ..streams import StreamSink, StreamSource
from .compare import compare_op

UNITS = ("residual", "pool", "sfu")
"""The units between layers, in the order their random streams are seeded."""


def op_stats(step) -> dict:
    """Per-op statistics of a level-4 run (summed over batches): RTL and ideal cycles,
    unit jobs and output values compared (every job's, a transformer step's
    intermediate ones included)."""
    return {
        "name": step.name,
        "kind": step.kind,
        "rtl_cycles": 0,
        "ideal_cycles": 0,
        "jobs": 0,
        "activations": 0,
    }


@dataclass
class OpRun:
    """One step on the RTL: its output (None after a mismatch), mismatches, RTL and
    ideal cycles, unit jobs and output values compared."""

    y: np.ndarray | None
    mismatches: int
    cycles: int
    ideal: int
    jobs: int
    activations: int


class OpRunner:
    """The units of ``network_top`` between layers (those the network has)."""

    def __init__(self, dut, p: dict, seed: int, p_valid: float, p_ready: float):
        self.tbs: dict = {}
        kw = {"p_valid": p_valid, "p_ready": p_ready}
        if p.get("residual_rtl"):
            rtl = ResidualRtlParams(**p["residual_rtl"])
            pre = PREFIXES["residual"]
            self.tbs["residual"] = res_bench.ResidualTB(dut, rtl, seed + 1, prefix=pre, **kw)
        if p.get("pool_rtl"):
            rtl = PoolRtlParams(**p["pool_rtl"])
            pre = PREFIXES["pool"]
            self.tbs["pool"] = pool_bench.PoolTB(dut, rtl, seed + 2, prefix=pre, **kw)
        if p.get("sfu_rtl"):
            rtl = SfuRtlParams(**p["sfu_rtl"])
            pre = PREFIXES["sfu"]
            self.tbs["sfu"] = sfu_bench.SfuTB(dut, rtl, seed + 3, prefix=pre, **kw)

    def reseed(self, seed: int, first_image: int) -> None:
        """Restart the units' random gaps and backpressure from (``seed``, the batch's first
        image id), so a batch's op cycles do not depend on the batches run before it in
        this process (images sharded over workers give the same cycles)."""
        for k, unit in enumerate(UNITS):
            tb = self.tbs.get(unit)
            if tb is None:
                continue
            tb.rng = np.random.default_rng([seed, first_image, k])
            for agent in tb.agents:
                if isinstance(agent, StreamSource | StreamSink):  # checkers draw nothing
                    agent.reseed(tb.rng)

    def job(self, step, req: Request):
        """The unit bench and its job for request ``req`` of ``step``."""
        tb = self.tbs.get(req.unit)
        if tb is None:
            raise AssertionError(f"{step.name}: network_top was built without a {req.unit} unit")
        if isinstance(req, AddRequest):
            return tb, res_bench.Job(req.a, req.b, req.params, req.coeffs)
        if isinstance(req, PoolRequest):
            job = pool_bench.Job(
                req.x, req.kind, req.window, req.stride, req.padding, req.params, req.coeffs
            )
            return tb, job
        job = sfu_bench.Job(req.op, req.x, req.params, req.b, req.mult, req.shift, req.wide)
        return tb, job

    async def _unit(self, tb, job, loaded) -> tuple[np.ndarray, bool, int, int]:
        """Run ``loaded`` (``job`` with the registers the RTL gets) on its unit: the
        output, whether ``o.last`` was right, RTL cycles and ideal cycles."""
        start = tb.cycle
        await tb.program(loaded)
        await tb.stream(loaded)
        cycles = tb.cycle - start
        n = tb.vectors(job)
        if isinstance(job, res_bench.Job):
            y, last = tb.received(job, n)
            # o.last passes i.last through: set on exactly each vector's final beat
            want_last = np.tile(np.arange(last.shape[1]) == last.shape[1] - 1, (n, 1))
        elif isinstance(job, sfu_bench.Job):
            y, last, _ = tb.received(job)
            want_last = sfu_bench.expected_last(job, tb.rtl.lanes, n)
        else:
            y = tb.received(job, n)
            last = want_last = None
        last_ok = last is None or np.array_equal(last, want_last)
        beats = len(next(iter(tb.input_fields(job).values())))
        return y, last_ok, cycles, len(tb.load_fields(loaded)) + beats

    async def run(self, prog, step, ins: list[np.ndarray], ids, errors: list[dict], hook=None):
        """Run ``step`` on the RTL, request by request, each compared with its golden
        model; returns an :class:`OpRun` (its ``y``: the step's output composed from the
        RTL's outputs, the input's shape for an add, (V,C,Ho,Wo) for a pool; None once a
        request mismatched: the run stops there).  ``hook(kind, index, job)`` may return a
        job with other registers for the RTL (a bench's corruption); the reference keeps
        the program's."""
        ids = np.asarray(ids)
        gen = op_requests(prog, step, ins)
        res = OpRun(None, 0, 0, 0, 0, 0)
        try:
            req = next(gen)
            while True:
                tb, job = self.job(step, req)
                want = answer(req)
                loaded = hook(step.kind, step.index, job) if hook is not None else job
                y, last_ok, cycles, ideal = await self._unit(tb, job, loaded)
                images = ids[row_images(req, len(want), len(ids))]
                # a transformer step's reports name the unit job (matmul, softmax, ...)
                unit_op = None if step.kind in ("add", "pool") else req.op
                bad = compare_op(step, y, want, images, errors, unit_op)
                if not last_ok:
                    errors.append(
                        {
                            "op": step.name,
                            "kind": step.kind,
                            "protocol": f"{req.op} job: o.last is not on exactly each "
                            "vector's final beat",
                        }
                    )
                    bad += 1
                res.mismatches += bad
                res.cycles += cycles
                res.ideal += ideal
                res.jobs += 1
                res.activations += int(np.size(y))
                if res.mismatches:
                    return res
                req = gen.send(y)
        except StopIteration as stop:
            res.y = stop.value
        return res
