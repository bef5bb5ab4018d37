"""cocotb 2 stream agents for Amaranth ``lib.stream`` ports, and the test-bench base class.

Timing model (simulator independent, no reliance on what a read right after a rising
edge returns): every clock cycle the :class:`TB` loop

1. awaits the falling edge and lets every agent *drive* its inputs for the coming rising
   edge (a source keeps ``valid``/``payload`` stable until accepted, as the stream
   contract requires; a sink picks a random ``ready``);
2. awaits ``ReadOnly`` (all combinational logic settled) and lets every agent *sample*:
   ``valid & ready`` now is exactly what the DUT's next rising edge will see, so a source
   knows its beat is taken and a sink records the payload.

One coroutine drives all agents (two triggers per cycle), which keeps cocotb's cost per
RTL cycle low enough for 10^5..10^6 vectors.  Amaranth names a stream ``i`` as the ports
``i__valid``, ``i__ready``, ``i__payload`` (payload flattened, see :mod:`.packing`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from cocotb.clock import Clock
from cocotb.handle import Immediate
from cocotb.triggers import FallingEdge, ReadOnly


class _StreamAgent:
    """The three ports of stream ``<prefix>`` (``__valid``, ``__ready``, ``__payload``) and
    the random draws of one agent, taken from ``rng`` in blocks of 4096 (one numpy call per
    4096 cycles)."""

    def __init__(self, dut: Any, prefix: str, rng: np.random.Generator, lean: bool) -> None:
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.name = prefix
        self.rng = rng
        self.lean = lean
        self._coins = iter(())

    def reseed(self, rng: np.random.Generator) -> None:
        """Draw from ``rng`` from now on (buffered draws of the old one are dropped)."""
        self.rng, self._coins = rng, iter(())

    def _coin(self, p: float) -> bool:
        """True with probability ``p``."""
        if p >= 1.0:
            return True
        try:
            return next(self._coins)
        except StopIteration:
            self._coins = iter((self.rng.random(4096) < p).tolist())
            return next(self._coins)


class StreamSource(_StreamAgent):
    """Drives ``<prefix>__valid``/``__payload`` from a queue of payload ints; random gaps.

    ``p_valid`` is the probability of offering the next beat in a cycle where nothing is
    pending (1.0 = no gaps).  A beat once offered stays offered until ``ready``.

    ``lean=True`` costs fewer simulator accesses per cycle (one costs about as much as a
    trigger): a port is written only when its value changes, and writes are
    ``Immediate`` -- they happen at the falling edge, half a clock before the DUT samples
    them, where a plain (deposit) write would cost an extra ReadWrite phase per cycle.
    """

    def __init__(
        self,
        dut: Any,
        prefix: str,
        rng: np.random.Generator,
        p_valid: float = 1.0,
        *,
        lean: bool = False,
    ) -> None:
        super().__init__(dut, prefix, rng, lean)
        self.p_valid = p_valid
        self.queue: deque[int] = deque()
        self.sent = 0
        self._offering = False
        self._taken = False
        self._valid_now = 0
        self.valid.value = 0
        # a defined payload from time 0: Icarus starts undriven inputs at X (Verilator at
        # 0), and a ready that decodes another stream's idle payload would be X
        self.payload.value = 0

    def send(self, words: Iterable[int]) -> None:
        self.queue.extend(words)

    @property
    def idle(self) -> bool:
        return not self.queue and not self._offering

    @property
    def taken(self) -> bool:
        """The beat offered (:attr:`head`) was accepted in the cycle last sampled; it
        leaves the queue at the next :meth:`drive`."""
        return self._taken

    @property
    def head(self) -> int:
        """The payload word offered now (or next): the front of the queue."""
        return self.queue[0]

    def _advance(self) -> bool:
        """Retire the beat taken last cycle; start offering the next one unless a gap is
        drawn.  True when a new beat is offered (its payload must be written)."""
        if self._taken:
            self.queue.popleft()
            self.sent += 1
            self._offering = self._taken = False
        if not self._offering and self.queue and self._coin(self.p_valid):
            self._offering = True
            return True
        return False

    def drive(self) -> None:
        if not self.lean:
            if self._advance():
                self.payload.value = self.queue[0]
            self.valid.value = int(self._offering)
            return
        if self._advance():
            self.payload.value = Immediate(self.queue[0])
        v = int(self._offering)
        if v != self._valid_now:
            self.valid.value = Immediate(v)
            self._valid_now = v

    def sample(self) -> None:
        self._taken = self._offering and bool(self.ready.value)

    def flush(self) -> None:
        """Forget everything (used around a reset): nothing offered, queue emptied."""
        self.queue.clear()
        self._offering = self._taken = False
        self._valid_now = 0
        self.valid.value = 0


class StreamSink(_StreamAgent):
    """Drives ``<prefix>__ready`` randomly (probability ``p_ready``) and records payloads.

    ``hold`` (set by a bench) forces ``ready`` low until cleared, e.g. while the party
    behind the sink is busy.  ``lean``: as for :class:`StreamSource`.
    """

    def __init__(
        self,
        dut: Any,
        prefix: str,
        rng: np.random.Generator,
        p_ready: float = 1.0,
        *,
        lean: bool = False,
    ) -> None:
        super().__init__(dut, prefix, rng, lean)
        self.p_ready = p_ready
        self.hold = False
        self.words: list[int] = []
        self._ready = False
        self._ready_now = False
        self.ready.value = 0

    def drive(self) -> None:
        r = self._ready = not self.hold and self._coin(self.p_ready)
        if not self.lean:
            self.ready.value = int(r)
        elif r != self._ready_now:
            self.ready.value = Immediate(int(r))
            self._ready_now = r

    def sample(self) -> None:
        if self._ready and self.valid.value:
            self.words.append(self.payload.value.to_unsigned())

    def flush(self) -> None:
        self._ready = self._ready_now = self.hold = False
        self.ready.value = 0


class Scoreboard:
    """Compares what a sink received with what a golden model predicts, field by field.

    ``expected`` holds field arrays (first axis = beat).  :meth:`check` compares the first
    ``n`` received beats (all of them by default; fewer after a reset cut a run short)
    and returns the number of mismatching beats; the first few are described in
    ``self.errors``.
    """

    def __init__(self, name: str, max_report: int = 5) -> None:
        self.name = name
        self.max_report = max_report
        self.errors: list[str] = []
        self.compared = 0
        self.mismatches = 0

    def check(
        self,
        got: dict[str, np.ndarray],
        expected: dict[str, np.ndarray],
        n: int | None = None,
        context: Callable[[int], str] | None = None,
    ) -> int:
        first = next(iter(got.values()))
        n = len(first) if n is None else n
        bad = np.zeros(n, dtype=bool)
        for name, exp in expected.items():
            g = np.asarray(got[name])[:n]
            e = np.asarray(exp)[:n]
            if g.shape != e.shape:
                raise AssertionError(
                    f"{self.name}: field {name}: got shape {g.shape}, expected {e.shape}"
                )
            diff = g != e
            bad |= diff.reshape(n, -1).any(axis=1) if diff.ndim > 1 else diff
        for i in np.flatnonzero(bad)[: self.max_report - len(self.errors)]:
            fields = ", ".join(
                f"{k}: got {np.asarray(got[k])[i].tolist()} expected "
                f"{np.asarray(expected[k])[i].tolist()}"
                for k in expected
            )
            where = f" ({context(int(i))})" if context else ""
            self.errors.append(f"{self.name} beat {int(i)}{where}: {fields}")
        self.compared += n
        self.mismatches += int(bad.sum())
        return int(bad.sum())


class ReadyPromise:
    """Per-cycle monitor of a block's documented handshake ``<sink>.ready = ~<source>.valid
    | <source>.ready`` (its input stalls only while its output is stalled, e.g. the NMPU):
    counts the cycles where it fails, sampled when every signal has settled.  ``enabled``
    may be cleared while the block runs a mode without the promise (the SFU's row ops)."""

    def __init__(self, dut: Any, sink: str, source: str) -> None:
        self.in_ready = getattr(dut, f"{sink}__ready")
        self.out_valid = getattr(dut, f"{source}__valid")
        self.out_ready = getattr(dut, f"{source}__ready")
        self.violations = 0
        self.checked = 0
        self.enabled = True

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        if not self.enabled:
            return
        promise = not self.out_valid.value or bool(self.out_ready.value)
        self.violations += bool(self.in_ready.value) != promise
        self.checked += 1

    def flush(self) -> None:
        pass


Rule = Callable[[dict[str, int], dict[str, int] | None], bool]


class CycleCheck:
    """Per-cycle monitor of a block's documented handshake properties: ``signals`` maps a
    short name to a DUT signal (a callable ``dut -> int`` for a payload field); each rule
    ``rule(now, prev) -> ok`` sees this cycle's and the previous cycle's values (``prev``
    None in the first cycle after a reset).  Counts checked cycles and violations per rule,
    sampled when every signal has settled."""

    def __init__(self, dut: Any, signals: dict[str, Any], rules: dict[str, Rule]) -> None:
        self.dut = dut
        self.signals = signals
        self.rules = rules
        self.violations = dict.fromkeys(rules, 0)
        self.checked = 0
        self.prev: dict[str, int] | None = None

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        now = {k: s(self.dut) if callable(s) else int(s.value) for k, s in self.signals.items()}
        for name, rule in self.rules.items():
            self.violations[name] += not rule(now, self.prev)
        self.checked += 1
        self.prev = now

    def flush(self) -> None:
        self.prev = None

    @property
    def total(self) -> int:
        return sum(self.violations.values())


def top_bit(name: str) -> Callable[[Any], int | None]:
    """A :class:`CycleCheck` signal: the most significant bit of the packed port ``name``
    (the ``last`` flag of payloads whose last field is ``last``); None while it is X or Z
    (a gate-level netlist leaves payload registers unreset, so an idle port's payload can
    be X; rules read it only while the port is valid, where None fails them)."""

    def read(dut: Any) -> int | None:
        msb = str(getattr(dut, name).value)[0]  # binary string, most significant first
        return int(msb) if msb in "01" else None

    return read


PROGRESS_BOUND = 10_000
"""Cycles :meth:`TB.run` waits without any beat transferred on any agent before it fails:
a lost beat fails within milliseconds of simulated time instead of running to the
(work-scaled) ``max_cycles``.  Longer than any legitimate pause of the blocks here."""


def transfers(agents) -> int:
    """Beats moved so far by the stream agents among ``agents`` (sources' ``sent`` plus
    sinks' received ``words``): a progress count for no-progress bounds."""
    return sum(getattr(a, "sent", 0) + len(getattr(a, "words", ())) for a in agents)


class TB:
    """Test-bench base: clock, reset and the per-cycle loop over stream agents.

    Subclasses add their agents with :meth:`add` and implement the block's protocol.
    """

    def __init__(self, dut: Any, seed: int = 0, period_ns: int = 10) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.period_ns = period_ns
        self.agents: list[Any] = []
        self.cycle = 0
        self.clock_task = None

    def add(self, agent):
        self.agents.append(agent)
        return agent

    clock_impl: str | None = None
    """``Clock(impl=)``: None = cocotb's choice (a Python coroutine, one wake per edge)."""

    def start_clock(self) -> None:
        self.clock_task = Clock(
            self.dut.clk, self.period_ns, unit="ns", impl=self.clock_impl
        ).start()

    async def reset(self, cycles: int = 2) -> None:
        """Synchronous reset for ``cycles`` rising edges; agents are flushed."""

        falling = FallingEdge(self.dut.clk)
        await falling  # leave a possible ReadOnly phase before writing
        for a in self.agents:
            a.flush()
        self.dut.rst.value = 1
        for _ in range(cycles):
            await falling
            self.cycle += 1
        self.dut.rst.value = 0

    async def run(
        self,
        until: Callable[[], bool],
        max_cycles: int,
        hooks: Sequence[Callable[[], None]] = (),
        progress_bound: int | None = PROGRESS_BOUND,
    ) -> int:
        """Step cycles until ``until()`` holds; returns cycles spent.  Raises on timeout,
        and after ``progress_bound`` cycles in which no agent transferred a beat (``None``:
        no such bound, for deliberate idling)."""

        clk = self.dut.clk
        agents = self.agents
        start = self.cycle
        falling, readonly = FallingEdge(clk), ReadOnly()
        moved, last_move = transfers(agents), start
        while not until():
            if self.cycle - start >= max_cycles:
                raise AssertionError(f"timeout after {max_cycles} cycles")
            if progress_bound is not None and (self.cycle - start) % 256 == 0:
                now = transfers(agents)  # checked every 256 cycles: the loop stays cheap
                if now != moved:
                    moved, last_move = now, self.cycle
                elif self.cycle - last_move > progress_bound:
                    raise AssertionError(
                        f"no beat transferred for {self.cycle - last_move} cycles "
                        f"(after {now} beats): a lost beat or a hung handshake"
                    )
            await falling
            for a in agents:
                a.drive()
            for h in hooks:
                h()
            await readonly
            for a in agents:
                a.sample()
            self.cycle += 1
        return self.cycle - start

    async def idle(self, cycles: int) -> None:
        """Let ``cycles`` cycles pass with the agents still active."""
        end = self.cycle + cycles
        await self.run(lambda: self.cycle >= end, cycles + 1, progress_bound=None)
