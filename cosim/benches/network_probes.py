"""Level-4 variants for tests and benchmarks (not part of ``aimcflow run``).

Run through :func:`aimcflow.cosim.network.run_level4` with ``bench=CORRUPTED`` or
``bench=BARE`` and the extra parameters in ``bench_params``:

* ``network_corrupted`` (``{"corrupt": {"layer": stage index, "field": gain|offset|mult|bias,
  "column": c, "delta": int}}``): adds ``delta`` to one coefficient as loaded into the RTL
  (the golden reference keeps the right one), so the comparator must report it.
* ``network_corrupted_op`` (``{"corrupt_op": [kind, index]}``, kind ``add`` or ``pool``
  with its index among the program's adds / pools, or a transformer step's kind
  (``attention``, ``layernorm``, ``add_const``, ...) with its index among the program's
  ``seqs``): the SHIFT register one lower as loaded into the unit for every job of that
  step (an add's sum, an average's, an SFU matmul's or layernorm's output twice as
  large), while the golden reference keeps the program's.
* ``network_bare`` (``{"bare_cycles": n}``): after the network, times bare cocotb clock
  loops of ``n`` cycles on the same Verilated top (the cosim cost floor):
  ``bare_s_per_cycle`` (one ``RisingEdge`` per cycle; ``bare_cpu_s_per_cycle`` its CPU
  time), ``two_trigger_s_per_cycle`` (the
  bench's ``FallingEdge`` + ``ReadOnly`` per cycle without agents) and
  ``two_trigger_4_reads_s_per_cycle`` (those plus reading the four handshake signals);
  ``bare_loops_s``, ``bare_loops_cpu_s``: the wall and CPU time of the three loops together.
* ``bare_only`` (``{"bare_cycles": n}``, run with :meth:`aimcflow.cosim.runner.Build.run`
  directly): the same bare loops without a network first.
"""

from __future__ import annotations

import dataclasses
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from ..network.cocotb_tests import finish, run_network
from ..runner import load_params

MODULE = "aimcflow.cosim.benches.network_probes"
CORRUPTED = (MODULE, "network_corrupted")
CORRUPTED_OP = (MODULE, "network_corrupted_op")
BARE = (MODULE, "network_bare")
BARE_ONLY = (MODULE, "bare_only")


@cocotb.test()
async def network_corrupted(dut):
    """The network with one coefficient loaded wrong into the RTL."""
    p = load_params()
    c = p["corrupt"]

    def corrupt(layer: int, coef: dict[str, np.ndarray]) -> None:
        if layer == int(c["layer"]):
            coef[c["field"]][..., int(c["column"])] += int(c["delta"])

    _, result, failed = await run_network(dut, p, coef_hook=corrupt)
    finish(result, failed)


@cocotb.test()
async def network_corrupted_op(dut):
    """The network with one op step's shift loaded wrong into its unit."""
    p = load_params()
    kind, index = p["corrupt_op"]

    def corrupt(k: str, i: int, job):
        if (k, i) != (kind, int(index)):
            return job
        if not hasattr(job, "coeffs"):  # an SFU job: the SHIFT register
            return dataclasses.replace(job, shift=job.shift - 1)
        return dataclasses.replace(
            job, coeffs=dataclasses.replace(job.coeffs, shift=job.coeffs.shift - 1)
        )

    _, result, failed = await run_network(dut, p, op_hook=corrupt)
    finish(result, failed)


async def bare_loops(dut, n: int) -> dict:
    """Seconds per cycle of bare clock loops on ``dut`` (its clock already running)."""
    clk = dut.clk
    rising, falling, readonly = RisingEdge(clk), FallingEdge(clk), ReadOnly()
    start, start_cpu = time.perf_counter(), time.process_time()
    await falling
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        await rising
    bare = (time.perf_counter() - t0) / n
    bare_cpu = (time.process_time() - c0) / n  # CPU time: what a loaded machine leaves alone
    await falling
    t0 = time.perf_counter()
    for _ in range(n):
        await falling
        await readonly
    two = (time.perf_counter() - t0) / n
    sigs = [dut.x__ready, dut.dac__valid, dut.o__valid, dut.adc__ready]
    await falling
    t0 = time.perf_counter()
    for _ in range(n):
        await falling
        await readonly
        for sig in sigs:
            bool(sig.value)
    reads = (time.perf_counter() - t0) / n
    return {
        "bare_s_per_cycle": bare,
        "bare_cpu_s_per_cycle": bare_cpu,
        "two_trigger_s_per_cycle": two,
        "two_trigger_4_reads_s_per_cycle": reads,
        # wall time of all three loops: a benchmark takes it off the run's wall time
        "bare_loops_s": time.perf_counter() - start,
        "bare_loops_cpu_s": time.process_time() - start_cpu,
    }


@cocotb.test()
async def network_bare(dut):
    """The network, then the bare clock loops on the same top."""
    p = load_params()
    tb, result, failed = await run_network(dut, p)
    if not failed:
        result.update(await bare_loops(tb.dut, int(p["bare_cycles"])))
    finish(result, failed)


@cocotb.test()
async def bare_only(dut):
    """Only the bare clock loops (``bare_cycles`` each), on the network's Verilated top:
    the per-cycle floor a benchmark compares a whole level-4 run against."""
    p = load_params()
    Clock(dut.clk, 10, unit="ns").start()
    result = await bare_loops(dut, int(p["bare_cycles"]))
    finish(result | {"errors": []}, False)
