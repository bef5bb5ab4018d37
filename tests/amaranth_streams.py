"""Reusable async helpers for Amaranth-simulator testbenches on ``amaranth.lib.stream``.

The helpers, so a test need not hand-write a handshake:

- :func:`put` / :func:`get`: one payload onto / off a stream (blocking on the handshake).
- :func:`send` / :func:`receive`: many payloads, with optional random idle cycles on the
  sender (``valid`` low) and random stalls on the receiver (``ready`` low), drawn from a
  seeded ``numpy`` generator so a failing run is reproducible.
- :func:`transfer`: drive one stream and drain another from the same testbench, cycle by
  cycle, recording the cycle of every transfer on both sides (throughput / latency checks).
- :func:`assert_sequence`: receive and compare with an expected list.
- :func:`to_py`: turn a sampled payload (``int`` or ``amaranth.lib.data.Const``) into plain
  Python ints / dicts / lists for comparison with a golden model.
- :func:`run_testbenches`: build a Simulator with a clock, add testbenches, run, optionally
  writing a VCD on failure.

A transfer happens at a clock edge where ``valid`` and ``ready`` are both high; the
helpers sample both at the edge (``ctx.tick().sample``), so they honour combinational
``ready`` paths of the device under test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

DEFAULT_TIMEOUT = 10_000
"""Cycles a helper waits without any transfer before failing: a lost beat or a hung
handshake fails within seconds of simulation, not at the pytest timeout.  Far above any
legitimate pause of the blocks tested here (pipeline latency plus a run of random stalls)."""


def to_py(value: Any) -> Any:
    """A sampled payload as plain Python: ints stay ints, structs become dicts and arrays
    become lists (recursively)."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [to_py(value[i]) for i in range(layout.length)]
        return {name: to_py(value[name]) for name, _ in layout}
    if hasattr(value, "value"):  # enum members
        return value.value
    return value


async def put(ctx, stream, payload, *, timeout: int = DEFAULT_TIMEOUT) -> None:
    """Offer one ``payload`` until the DUT accepts it, then drop ``valid``."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    for _ in range(timeout):
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            ctx.set(stream.valid, 0)
            return
    raise AssertionError(f"put: stream not ready within {timeout} cycles")


async def until_high(ctx, signal, what: str, bound: int = DEFAULT_TIMEOUT) -> None:
    """Tick until ``signal`` is high at a clock edge (a handshake completes there); fail
    after ``bound`` cycles instead of waiting forever (``ctx.tick().until`` has no bound)."""
    for _ in range(bound):
        _, _, value = await ctx.tick().sample(signal)
        if value:
            return
    raise AssertionError(f"{what}: no handshake within {bound} cycles")


async def get(ctx, stream, *, timeout: int = DEFAULT_TIMEOUT):
    """Accept one payload (``ready`` high until a beat transfers) and return it."""
    ctx.set(stream.ready, 1)
    for _ in range(timeout):
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            ctx.set(stream.ready, 0)
            return payload
    raise AssertionError(f"get: stream not valid within {timeout} cycles")


async def send(
    ctx,
    stream,
    payloads: Iterable,
    *,
    rng: np.random.Generator | None = None,
    idle: float = 0.0,
    timeout: int = DEFAULT_TIMEOUT,
) -> None:
    """Put every payload in order; before each, with probability ``idle`` per cycle, hold
    ``valid`` low for a cycle (random source-side gaps)."""
    for payload in payloads:
        while rng is not None and idle > 0 and rng.random() < idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        await put(ctx, stream, payload, timeout=timeout)


async def receive(
    ctx,
    stream,
    count: int,
    *,
    rng: np.random.Generator | None = None,
    stall: float = 0.0,
    cycles: list[int] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
) -> list:
    """Collect ``count`` payloads; each cycle ``ready`` is low with probability ``stall``.

    If ``cycles`` is given, the cycle index (from this call's start) of every transfer is
    appended to it, for throughput checks.
    """
    out: list = []
    n = 0
    idle_run = 0
    while len(out) < count:
        ready = not (rng is not None and stall > 0 and rng.random() < stall)
        ctx.set(stream.ready, int(ready))
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            out.append(payload)
            if cycles is not None:
                cycles.append(n)
            idle_run = 0
        else:
            idle_run += 1
            if idle_run > timeout:
                raise AssertionError(
                    f"receive: got {len(out)} of {count} payloads, then nothing for "
                    f"{timeout} cycles"
                )
        n += 1
    ctx.set(stream.ready, 0)
    return out


async def transfer(
    ctx,
    sink,
    payloads: Sequence,
    source,
    count: int,
    *,
    rng: np.random.Generator | None = None,
    idle: float = 0.0,
    stall: float = 0.0,
    timeout: int = DEFAULT_TIMEOUT,
    trace: list[tuple[int, int, int, int]] | None = None,
) -> tuple[list, list[int], list[int]]:
    """Put ``payloads`` on the DUT's input ``sink`` while collecting ``count`` payloads from
    its output ``source``, both in one cycle loop.

    A new input beat starts with probability ``1 - idle`` per cycle and, once offered, stays
    valid and stable until accepted (stream rule); ``ready`` on ``source`` is low with
    probability ``stall`` per cycle.  Returns ``(received, in_cycles, out_cycles)``: the
    payloads and the cycle index (from this call's start) of each input and output transfer.
    With ``trace``, every cycle appends ``(sink.valid, sink.ready, source.valid,
    source.ready)`` as seen at that clock edge, for per-cycle handshake invariants.
    """
    received: list = []
    in_cycles: list[int] = []
    out_cycles: list[int] = []
    k = 0
    offering = False
    n = 0
    last_progress = 0
    while k < len(payloads) or len(received) < count:
        if not offering and k < len(payloads):
            offering = not (rng is not None and idle > 0 and rng.random() < idle)
            if offering:
                ctx.set(sink.payload, payloads[k])
        ctx.set(sink.valid, int(offering))
        ready = len(received) < count and not (
            rng is not None and stall > 0 and rng.random() < stall
        )
        ctx.set(source.ready, int(ready))
        _, _, in_ready, out_valid, out_payload = await ctx.tick().sample(
            sink.ready, source.valid, source.payload
        )
        if trace is not None:
            trace.append((int(offering), int(in_ready), int(out_valid), int(ready)))
        if offering and in_ready:
            in_cycles.append(n)
            k += 1
            offering = False
            last_progress = n
        if ready and out_valid:
            received.append(out_payload)
            out_cycles.append(n)
            last_progress = n
        n += 1
        if n - last_progress > timeout:
            raise AssertionError(
                f"transfer: {k}/{len(payloads)} beats in, {len(received)}/{count} out, "
                f"then no progress for {timeout} cycles"
            )
    ctx.set(sink.valid, 0)
    ctx.set(source.ready, 0)
    return received, in_cycles, out_cycles


def assert_ready_promise(trace: Sequence[tuple[int, int, int, int]], what: str = "") -> None:
    """The handshake promise of a pipeline that moves as one, in every cycle of a
    :func:`transfer` ``trace``: ``i.ready == ~o.valid | o.ready`` (only a stalled output
    holds the input back, and nothing else drops ``i.ready``)."""
    t = np.asarray(trace)
    in_ready, out_valid, out_ready = t[:, 1], t[:, 2], t[:, 3]
    bad = np.flatnonzero(in_ready != ((1 - out_valid) | out_ready))
    assert bad.size == 0, f"{what}i.ready != ~o.valid | o.ready in cycles {bad[:8].tolist()}"


def recorder(signals: Sequence, rows: list):
    """A background testbench that appends, at every clock edge, the values of
    ``signals`` (as plain ints) to ``rows``: a per-cycle trace for handshake invariants of
    a design whose streams are driven by several testbenches."""

    async def record(ctx) -> None:
        async for _, _, *values in ctx.tick().sample(*signals):
            rows.append(tuple(int(v) for v in values))

    return record


def stalled_cycles(trace: Sequence[tuple[int, int, int, int]]) -> int:
    """Cycles of a :func:`transfer` ``trace`` where the output offered a beat that was not
    taken (``o.valid & ~o.ready``): each costs a pipeline that freezes on a stall exactly
    one cycle."""
    t = np.asarray(trace)
    return int(np.sum(t[:, 2] & (1 - t[:, 3])))


async def assert_sequence(
    ctx, stream, expected: Sequence, *, convert: Callable[[Any], Any] = to_py, **kw
) -> None:
    """Receive ``len(expected)`` payloads and assert they equal ``expected`` in order
    (each converted with ``convert`` first)."""
    got = [convert(p) for p in await receive(ctx, stream, len(expected), **kw)]
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, f"beat {i}: got {g}, expected {e}"


def run_testbenches(
    dut,
    *testbenches,
    background: Sequence = (),
    period_s: float = 1e-8,
    vcd: str | Path | None = None,
) -> None:
    """Simulate ``dut`` with a clock on the ``sync`` domain and the given async
    testbenches (run concurrently until all return).  ``background`` testbenches (e.g. a
    responder that serves requests forever) run alongside but do not keep the simulation
    alive.  With ``vcd`` (or the environment variable ``AIMCFLOW_VCD_DIR`` set: one file per
    test there, named after the test), waveforms are written for debugging."""
    if vcd is None and os.environ.get("AIMCFLOW_VCD_DIR"):
        test = os.environ.get("PYTEST_CURRENT_TEST", "amaranth_sim").split(" ")[0]
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in test)
        Path(os.environ["AIMCFLOW_VCD_DIR"]).mkdir(parents=True, exist_ok=True)
        vcd = Path(os.environ["AIMCFLOW_VCD_DIR"]) / f"{name}.vcd"
    sim = Simulator(dut)
    sim.add_clock(period_s)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if vcd is None:
        sim.run()
    else:
        with sim.write_vcd(str(vcd)):
            sim.run()
