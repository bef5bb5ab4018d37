"""The images of levels 2-4 of ``aimcflow run`` split into shards, run in this process or
as tasks on a Dask cluster (``--workers N`` / ``--scheduler ADDR``,
:mod:`aimcflow.flows.cluster`), and merged so that the results do not depend on where or
in how many pieces they ran.

Why the merged results are those of one process, bit for bit:

* every noise stream is keyed by (seed, layer, tile, image, iteration), never by the
  batch or the process (``models/rng.py``), and levels 2 and 3 give the same logits for
  any split of the images into batches;
* level 2 adds up correct-classification counts (:func:`~aimcflow.models.nn.evaluate.
  correct_counts`), which is exact; level 3 concatenates logits and layer traces in image
  order;
* level 4 runs the images in fixed batches of at most :data:`LEVEL4_BATCH` (the same
  batches however many workers there are: :func:`level4_batch`), each batch's column jobs
  reload their coefficients, and its random stalls are reseeded from the seed and the
  batch's first image id; so every batch costs the same RTL cycles wherever it runs, and
  a shard is a run of whole batches.

A shard is one task: one simulator start per worker at level 4.  There are at most as
many shards as workers and as level-4 batches (``ceil(images / 64)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

LEVEL4_BATCH = 64  # largest level-4 batch (images); more batches = more shards to spread


def level4_batch(n: int) -> int:
    """The level-4 batch size for ``n`` images: the fewest batches of at most
    :data:`LEVEL4_BATCH`, equally full (360 images: 6 batches of 60)."""
    batches = max(1, -(-n // LEVEL4_BATCH))
    return max(1, -(-n // batches))


@dataclass
class Shards:
    """Contiguous image ranges ``bounds`` (whole level-4 batches each) and where they run:
    this process (``client`` None) or the Dask cluster of ``client``."""

    n: int
    bounds: list[tuple[int, int]]
    client: Any = None
    _shared: dict = field(default_factory=dict)

    @classmethod
    def plan(cls, n: int, client=None, workers: int = 1) -> Shards:
        """``n`` images over ``workers`` shards (fewer if there are fewer level-4 batches)."""
        b = level4_batch(n)
        batches = -(-n // b)
        w = max(1, min(workers, batches))
        cuts = [min(n, (k * batches // w) * b) for k in range(w + 1)]
        return cls(n, [(cuts[k], cuts[k + 1]) for k in range(w)], client)

    @property
    def local(self) -> bool:
        return self.client is None

    def share(self, obj):
        """``obj`` sent once to every worker (a future standing for it), or ``obj``."""
        if self.local:
            return obj
        key = id(obj)
        if key not in self._shared:
            (self._shared[key],) = self.client.scatter([obj], broadcast=True, hash=False)
        return self._shared[key]

    def map(self, fn, args: list[tuple], what: str) -> list:
        """``fn(*args[k])`` per shard ``k``, results in shard order.  On a cluster each is
        one task; a worker that dies raises :class:`~aimcflow.flows.cluster.WorkerLost`."""
        if self.local:
            return [fn(*a) for a in args]
        from aimcflow.flows.cluster import gather  # lazy: dask

        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        names = [f"{what} on test images {a}..{b - 1}" for a, b in self.bounds]
        return gather(self.client, futures, names)


# --- level 2 ---------------------------------------------------------------------------


def analog_float_counts(imp, cfg, x, y, images, drifts, repeats: int) -> np.ndarray:
    """A shard's level 2: correct counts (repeats, drift times) of the imported model
    ``imp`` converted under ``cfg``."""
    from aimcflow.models.nn.convert import convert  # lazy: torch (worker side)
    from aimcflow.models.nn.evaluate import correct_counts

    net = convert(imp, cfg, program=False)
    return correct_counts(net, x, y, drifts, repeats, images=images, cfg=cfg)


def level2(shards: Shards, imp, cfg, x, y, images, drifts, repeats: int) -> np.ndarray:
    """Correct counts of every shard, added up."""
    imp_f = shards.share(imp)
    parts = shards.map(
        analog_float_counts,
        [
            (imp_f, cfg, x[a:b], y[a:b], images[a:b], list(drifts), repeats)
            for a, b in shards.bounds
        ],
        "analog-float",
    )
    return np.sum(parts, axis=0)


# --- level 3 ---------------------------------------------------------------------------


def golden_shard(prog, x, images, sfu: str = "int"):
    """A shard's level 3: logits and the per-layer traces (``sfu``: see
    :func:`~aimcflow.models.nn.golden.forward_golden`)."""
    from aimcflow.models.nn.golden import LayerTrace, forward_golden  # lazy: torch

    traces = [LayerTrace(lp.name) for lp in prog.layers]
    return forward_golden(prog, x, images, traces=traces, sfu=sfu), traces


def level3(shards: Shards, prog, x, images, traces, sfu: str = "int") -> np.ndarray:
    """Level-3 logits of every shard in image order; each layer's trace in ``traces``
    gets the shards' batches appended in order."""
    prog_f = shards.share(prog)
    parts = shards.map(
        golden_shard,
        [(prog_f, x[a:b], images[a:b], sfu) for a, b in shards.bounds],
        "analog-golden",
    )
    for _, trs in parts:
        for into, tr in zip(traces, trs, strict=True):
            for f in fields(tr):  # every per-batch list of the trace, in shard order
                if isinstance(getattr(tr, f.name), list):
                    getattr(into, f.name).extend(getattr(tr, f.name))
    return np.concatenate([lg for lg, _ in parts])


# --- level 4 ---------------------------------------------------------------------------


def mismatches(r, logits3) -> int:
    """A level-4 run's job mismatches, plus its logits that differ from level 3's (which
    cannot happen if every job matched)."""
    if r.logits is None or np.array_equal(r.logits, logits3):
        return r.mismatches
    return r.mismatches + int(np.sum(r.logits != logits3))


def worker_build(prog, builds, sim: str):
    """The host's builds (one per periphery configuration) when this machine has them (same
    cache), else this machine's own, each built once under the cache's lock
    (:mod:`aimcflow.cosim.buildcache`)."""
    if builds is not None and all((Path(b.dir) / "BUILD_OK").exists() for b in builds):
        return builds
    from aimcflow.cosim import network  # lazy: cocotb, amaranth

    return network.builds_for(prog, sim)


def level4(shards: Shards, prog, x, images, logits3, build, sim: str, stalls: float):
    """Level 4 of every shard, merged (:func:`merge_level4`): ``(run, stalled run or
    None)``; the stalled run is None unless every shard's first run matched level 3."""
    # the batch size is the whole run's, not the shard's: a shard is whole batches
    batch = level4_batch(shards.n)
    prog_f = shards.share(prog)
    parts = shards.map(
        level4_shard,
        [
            (prog_f, x[a:b], images[a:b], logits3[a:b], build, sim, stalls, batch)
            for a, b in shards.bounds
        ],
        "level 4 (analog-rtl)",
    )
    first = merge_level4([p[0] for p in parts])
    clean = all(p[1] is not None for p in parts)
    return first, merge_level4([p[1] for p in parts]) if clean else None


def level4_shard(prog, x, images, logits3, build, sim: str, stalls: float, batch: int):
    """A shard's level 4 in batches of ``batch`` images, in one simulator run: every
    stream ready, then (if that matched level 3) ``stalls`` random stalls, on the first
    run's golden reference; ``(Level4Result, Level4Result or None)``."""
    from aimcflow.cosim import network  # lazy: cocotb, amaranth

    b = worker_build(prog, build, sim)
    r = network.run_level4(prog, x, images, build=b, batch_size=batch, then_stalls=stalls)
    if mismatches(r, logits3):
        return r, None
    return r, r.stalled


_RATES = {"adc_sat_rate": ("adc_sat_count", "adc_sat_n")}  # rate = count / n, exact


def _merge_values(vals: list):
    """Counters add up (ints, floats, equal-length int lists, lists of per-layer dicts);
    anything else is the first shard's (names, settings)."""
    v0 = vals[0]
    if all(isinstance(v, bool) for v in vals) or isinstance(v0, str):
        return v0
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return sum(vals)
    if isinstance(v0, list) and all(isinstance(v, list) and len(v) == len(v0) for v in vals):
        if all(isinstance(e, int) for v in vals for e in v):
            return [sum(t) for t in zip(*vals, strict=True)]
        if all(isinstance(e, dict) for v in vals for e in v):  # per-layer or per-op stats
            return [_merge_dicts(list(t)) for t in zip(*vals, strict=True)]
    return v0


def _merge_dicts(ds: list[dict]) -> dict:
    out = {k: _merge_values([d[k] for d in ds if k in d]) for k in ds[0]}
    for rate, (count, n) in _RATES.items():
        if rate in out and count in out and n in out:
            out[rate] = out[count] / out[n] if out[n] else 0.0
    return out


def merge_level4(parts: list):
    """One :class:`~aimcflow.cosim.network.Level4Result` of the shards' (image order):
    logits concatenated, counts and cycles added, per-layer statistics added (rates from
    their counts), the first :data:`~aimcflow.cosim.network.compare.MAX_REPORT` errors,
    the first failing shard's waves and log."""
    from aimcflow.cosim.network import Level4Result  # lazy: cocotb
    from aimcflow.cosim.network.compare import MAX_REPORT

    if len(parts) == 1:
        return parts[0]
    logits = (
        None if any(p.logits is None for p in parts) else np.concatenate([p.logits for p in parts])
    )
    failed = next((p for p in parts if p.waves or p.log), parts[0])
    return Level4Result(
        logits=logits,
        activations_compared=sum(p.activations_compared for p in parts),
        mismatches=sum(p.mismatches for p in parts),
        errors=[e for p in parts for e in p.errors][:MAX_REPORT],
        rtl_cycles=sum(p.rtl_cycles for p in parts),
        ideal_cycles=sum(p.ideal_cycles for p in parts),
        layers=[_merge_dicts(list(ls)) for ls in zip(*(p.layers for p in parts), strict=True)],
        conv_cycles=sum(p.conv_cycles for p in parts),
        sim_wall_s=sum(p.sim_wall_s for p in parts),
        build_s=parts[0].build_s,
        build_cached=parts[0].build_cached,
        waves=failed.waves,
        log=failed.log,
        extra=_merge_dicts([p.extra for p in parts]),
        stalled=None
        if any(p.stalled is None for p in parts)
        else merge_level4([p.stalled for p in parts]),
    )
