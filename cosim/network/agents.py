"""The per-beat agents of level 4 (:class:`~aimcflow.cosim.network.benches.NetworkTB`): the
network's tiles behind ``dac``/``adc``, the answer source and the ``status`` monitor.

They use the stream agents of :mod:`aimcflow.cosim.streams` in their lean mode (a port is
written only when its value changes, ``Immediate`` writes) through public hooks only:
``StreamSink.hold``, ``StreamSource.taken`` and ``StreamSource.head``.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.golden import ColumnJob
from aimcflow.rtl.protocol import answer_beats, groups, segment_beats

from ..benches.periphery_top import StatusMonitor
from ..streams import StreamSink, StreamSource
from .jobs import RecordingTile


class NetTileResponder:
    """The analog tiles of one column job behind ``dac``/``adc``.

    Segments arrive in the order v0 t0, v0 t1, ..., each once per management iteration
    (``iter`` 0 starts a new segment).  A request equal (as packed beats) to the one the
    golden controller made is answered with the recorded tile answer, anything else by the
    tile itself.  The final answer per (vector, row tile) is kept as the job's ADC codes
    ``a``.
    """

    def __init__(self, dac: StreamSink, adc: StreamSource, dac_codec, adc_codec, lanes):
        self.dac, self.adc = dac, adc
        self.dac_codec, self.adc_codec = dac_codec, adc_codec
        self.lanes = lanes
        leaves = {leaf.name: leaf for leaf in dac_codec.leaves}
        self.iter_off, self.iter_mask = leaves["iter"].offset, (1 << leaves["iter"].width) - 1
        self.live_tiles = False
        self.job = None

    def start(self, job: ColumnJob, rec: list[RecordingTile], x_lanes: int) -> None:
        self.job, self.rec = job, rec
        self.V = len(job.x_segments[0])
        self.T = len(job.x_segments)
        self.C = len(job.mult)
        self.G = groups(self.C, self.lanes)
        self.nb = [groups(xs.shape[1], x_lanes) for xs in job.x_segments]
        self.rows = [xs.shape[1] for xs in job.x_segments]
        self.x_lanes = x_lanes
        self.seen = len(self.dac.words)
        self.seg = -1
        self.a = np.zeros((self.V, self.T, self.C), dtype=np.int64)
        self.requests = 0
        self.live_calls = 0
        self.dac_mismatches: list[tuple[int, int, int]] = []
        # expected DAC beats and recorded answers, packed once per (row tile, iteration)
        self.memo: dict[tuple[int, int], tuple] = {}
        for t, r in enumerate(rec):
            for k, (idx, d, a, s) in r.calls.items():
                pos = np.full(self.V, -1, dtype=np.int64)
                pos[idx] = np.arange(idx.size)
                db = segment_beats(d, x_lanes)
                dw = self.dac_codec.pack(
                    {"d": db["x"], "iter": np.full(len(db["x"]), k), "last": db["last"]}
                )
                aw = self.adc_codec.pack(answer_beats(a, s, self.lanes))
                self.memo[(t, k)] = (pos, dw, aw, a)

    def drive(self) -> None:
        if self.job is None:
            return
        words = self.dac.words
        while len(words) > self.seen:
            k = (words[self.seen] >> self.iter_off) & self.iter_mask
            seg = self.seg + 1 if k == 0 else self.seg
            t = seg % self.T
            nb = self.nb[t]
            if len(words) - self.seen < nb:
                return
            self.seg = seg
            v = seg // self.T
            got = words[self.seen : self.seen + nb]
            self.seen += nb
            self.requests += 1
            m = self.memo.get((t, k))
            pos = int(m[0][v]) if m is not None and v < self.V else -1
            # the mgmt protocol sends no DAC codes before the answer is taken; holding
            # ready low meanwhile saves reading dac.valid in those cycles
            self.dac.hold = True
            if not self.live_tiles and pos >= 0 and got == m[1][pos * nb : (pos + 1) * nb]:
                self.adc.send(m[2][pos * self.G : (pos + 1) * self.G])
                if v < self.V:
                    self.a[v, t] = m[3][pos]
                continue
            if pos < 0 or got != m[1][pos * nb : (pos + 1) * nb]:
                self.dac_mismatches.append((v, t, int(k)))
            f = self.dac_codec.unpack(got)
            d = f["d"].reshape(-1)[: self.rows[t]]
            self.live_calls += 1
            if v < self.V:
                a, s = self.rec[t].live(v, self.V, d, int(k))
                self.a[v, t] = a
            else:  # more segments than vectors: answer something so the RTL can finish
                a, s = np.zeros(self.C, dtype=np.int64), False
            self.adc.send(self.adc_codec.pack(answer_beats(a[None, :], [s], self.lanes)))

    def sample(self) -> None:
        pass

    def flush(self) -> None:
        self.job = None


class AnswerSource(StreamSource):
    """The lean ``adc`` source; knows when the first beat of a tile answer is taken, and
    releases the DAC sink's ``hold`` when the last one is."""

    def __init__(self, *args, last_bit: int, dac: StreamSink, **kw) -> None:
        super().__init__(*args, lean=True, **kw)
        self.last_bit = last_bit
        self.dac = dac
        self.next_is_first = True
        self.first_taken = False

    def drive(self) -> None:
        if self.taken:  # the beat taken last cycle leaves the queue now
            self.next_is_first = bool((self.head >> self.last_bit) & 1)
        super().drive()

    def sample(self) -> None:
        super().sample()
        self.first_taken = self.taken and self.next_is_first
        if self.taken and (self.head >> self.last_bit) & 1:
            self.dac.hold = False  # answer complete: DAC codes welcome from next cycle

    def flush(self) -> None:
        super().flush()
        self.next_is_first, self.first_taken = True, False


class AnswerStatusMonitor(StatusMonitor):
    """``status`` is valid exactly when the first beat of a management result enters the
    NMPU, and that beat is the first beat of the tile's final answer passing through the
    controller combinationally (``rtl/periphery_top.py``, ``rtl/mgmt.py``): so the port is
    read only in cycles where the ``adc`` source's first answer beat is taken.  A record
    missed by a wrong assumption shows up as a timeout."""

    def __init__(self, dut, adc: AnswerSource) -> None:
        super().__init__(dut)
        self.adc = adc

    def sample(self) -> None:
        if self.adc.first_taken:
            super().sample()
