"""Level 4 between the layers: residual adds and poolings on their RTL (``rtl/residual.py``,
``rtl/pool.py``, beside ``periphery_top`` in ``network_top``), each compared with its
golden model on the same inputs.

:class:`OpRunner` drives the units through their prefixed ports (``res_*``, ``pool_*``)
with the units' own bench agents (:class:`~aimcflow.cosim.benches.residual.ResidualTB`,
:class:`~aimcflow.cosim.benches.pool.PoolTB`) on the clock the network bench started.
An op is one job: its registers go in on ``load``, then every image of the batch
(an add: ``a``, ``b`` flattened to one vector per image, ``ceil(N / lanes)`` beats; a pool:
each window's in-map positions, one beat each, per channel group), and the RTL's outputs
come back on ``o``.  The RTL's output feeds the next step (true RTL in the loop).

Ideal cycles of an op: one per load beat plus one per input beat (the input stream is
the bottleneck at initiation interval 1); the pipeline latency (``LATENCY``) is not
counted as ideal, as for the column jobs (:mod:`aimcflow.cosim.network`).
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.schedule import add_args, golden_add, golden_pool, pool_args
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams

from ..benches import pool as pool_bench
from ..benches import residual as res_bench
from ..postops_top import PREFIXES
from ..streams import StreamSink, StreamSource
from .compare import compare_op


def op_stats(step) -> dict:
    """Per-op statistics of a level-4 run (summed over batches)."""
    return {
        "name": step.name,
        "kind": step.kind,
        "rtl_cycles": 0,
        "ideal_cycles": 0,
        "jobs": 0,
        "activations": 0,
    }


class OpRunner:
    """The residual and pooling units of ``network_top`` (those the network has)."""

    def __init__(self, dut, p: dict, seed: int, p_valid: float, p_ready: float):
        self.res = self.pool = None
        if p.get("residual_rtl"):
            rtl = ResidualRtlParams(**p["residual_rtl"])
            self.res = res_bench.ResidualTB(
                dut, rtl, seed + 1, p_valid, p_ready, prefix=PREFIXES["residual"]
            )
        if p.get("pool_rtl"):
            rtl = PoolRtlParams(**p["pool_rtl"])
            self.pool = pool_bench.PoolTB(
                dut, rtl, seed + 2, p_valid, p_ready, prefix=PREFIXES["pool"]
            )

    def reseed(self, seed: int, first_image: int) -> None:
        """Restart the units' random gaps and backpressure from (``seed``, the batch's first
        image id), so a batch's op cycles do not depend on the batches run before it in
        this process (images sharded over workers give the same cycles)."""
        for k, tb in enumerate((self.res, self.pool)):
            if tb is None:
                continue
            tb.rng = np.random.default_rng([seed, first_image, k])
            for agent in tb.agents:
                if isinstance(agent, StreamSource | StreamSink):  # checkers draw nothing
                    agent.reseed(tb.rng)

    def job(self, prog, step, ins: list[np.ndarray]):
        """The unit bench and its job for ``step`` (an add or a pool) on inputs ``ins``."""
        if step.kind == "add":
            if self.res is None:
                raise AssertionError(f"{step.name}: network_top was built without a residual unit")
            a, b = (np.asarray(v, dtype=np.int64) for v in ins)
            gp, c = add_args(prog, step.index)
            V = a.shape[0]
            return self.res, res_bench.Job(a.reshape(V, -1), b.reshape(V, -1), gp, c)
        if self.pool is None:
            raise AssertionError(f"{step.name}: network_top was built without a pooling unit")
        pp = prog.pools[step.index]
        gp, c = pool_args(prog, step.index)
        x = np.asarray(ins[0], dtype=np.int64)
        return self.pool, pool_bench.Job(x, pp.kind, pp.kernel, pp.stride, pp.padding, gp, c)

    async def run(
        self, prog, step, ins: list[np.ndarray], ids, errors: list[dict], hook=None
    ) -> tuple[np.ndarray, int, int, int]:
        """Run ``step`` on the RTL and compare with its golden model; returns the RTL's
        output (the input's shape for an add, (V,C,Ho,Wo) for a pool), its mismatch count,
        RTL cycles and ideal cycles.  ``hook(kind, index, job)`` may return a job with
        other registers for the RTL (a bench's corruption); the reference keeps the
        program's."""
        tb, job = self.job(prog, step, ins)
        if step.kind == "add":
            want = golden_add(prog, step.index, ins[0], ins[1])
        else:
            want = golden_pool(prog, step.index, ins[0])
        loaded = hook(step.kind, step.index, job) if hook is not None else job
        start = tb.cycle
        await tb.program(loaded)
        await tb.stream(loaded)
        cycles = tb.cycle - start
        n = tb.vectors(job)
        if tb is self.res:
            y, last = tb.received(job, n)
            y = y.reshape(np.shape(ins[0]))
            # o.last passes i.last through: set on exactly each vector's final beat
            last_ok = np.array_equal(
                last, np.tile(np.arange(last.shape[1]) == last.shape[1] - 1, (n, 1))
            )
        else:
            y, last_ok = tb.received(job, n), True
        bad = compare_op(step, y, want, ids, errors)
        if not last_ok:
            errors.append(
                {
                    "op": step.name,
                    "kind": step.kind,
                    "protocol": "o.last is not set on exactly each vector's final beat",
                }
            )
            bad += 1
        ideal = len(tb.load_fields(loaded)) + len(tb.input_fields(job)["last"])
        return y, bad, cycles, ideal
