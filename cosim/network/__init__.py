"""Level 4, "analog-rtl": a whole network with the Verilated ``periphery_top`` in the loop.

The network runs inside the cocotb process, layer by layer, exactly as level 3
(:mod:`aimcflow.models.nn.golden`) does, except that every column job is executed by the
RTL: the job's NMPU coefficients and registers go in through ``nmpu_load``/``mgmt_load``,
its input segments through ``x``; every DAC request the controller makes is answered by
the job's Python tile (``tile.forward_codes``, noise keyed by seed, layer, tile, image and
management iteration); ``y`` comes back on ``o`` and ``e``, ``iter``, ``sat_any`` on
``status``.  The RTL's ``y`` feeds the next layer (true RTL in the loop).  Each job is also
run through the golden models (:func:`golden_periphery`) on the same inputs and every
output activation and every status record is compared: the first mismatching layer is
finished, reported (layer, tile, image, column, expected, actual) and the run stops.

Tile answers: the golden run records, per row tile and management iteration, the DAC codes
the golden controller sent and the tile's answer.  The tile model is a pure function of
(DAC codes, noise key, iteration) (counter-based noise, ARCHITECTURE.md), so when the RTL
asks with exactly those codes (compared as packed beats) the recorded answer *is* the
tile's answer; any other request is answered by calling the tile live.  This keeps the
per-segment Python cost to a list comparison; ``live_tiles=True`` calls the tile for every
request instead.

Cycle accounting (``ideal_cycles``): per job, one cycle per coefficient-load beat plus,
per input segment and management iteration, ``ceil(R/lanes)`` DAC beats followed by
``ceil(C/lanes)`` ADC beats: the tile interface is the bottleneck stream (a crossbar
converts only once all its inputs are applied, so a segment's answer cannot overlap its
own DAC codes).  Input ``x`` and output ``o`` transfers overlap with it.  Pipeline
latency and the controller's per-segment turnaround are not counted as ideal.

Two ways to drive the RTL, on one Verilator build of ``network_top``
(:mod:`aimcflow.cosim.network_top`, ``periphery_top`` plus ring buffers):
:class:`RingNetworkTB` (the default: no gaps, no backpressure, recorded tile answers)
pre-loads a job's coefficients, input segments and the recorded tile answers into the
wrapper's input rings and reads ``o``, ``status`` and every DAC request back from its
output rings, so Python wakes once per refill/drain instead of once per clock while
``periphery_top`` still sees one beat per clock with valid/ready; :class:`NetworkTB` (random
gaps and backpressure, live tiles, or ``per_beat``) drives ``periphery_top`` through the
wrapper's bypass with per-beat agents, one Python wake-up per clock.  Both present the same
stream timing with no gaps, so both count the same ``periphery_top`` cycles.

A program whose layers need different periphery parameters (``[[layer]]`` entries: ADC
or DAC width, ``out_shift``, bound-management retries) runs once per distinct parameter
set (:func:`rtl_groups`, one build each): each run drives that set's layers through the RTL
and the other layers through the golden models, whose outputs are level 3's.

Modules, by role: :mod:`.host` (the build and :func:`run_level4`, run by ``aimcflow
run``), :mod:`.cocotb_tests` (the cocotb test inside the simulator), :mod:`.benches` and
:mod:`.agents` (the two ways to drive the RTL), :mod:`.jobs` (what both sides agree on: beat
words, the ideal-cycle rule, output decoding), :mod:`.compare` (the comparator).
"""

from .compare import format_mismatch
from .host import (
    Level4Result,
    RtlGroup,
    build_for,
    builds_for,
    check_fits,
    rtl_groups,
    rtl_params,
    run_level4,
    x_format,
)

__all__ = [
    "Level4Result",
    "RtlGroup",
    "build_for",
    "builds_for",
    "rtl_groups",
    "check_fits",
    "format_mismatch",
    "rtl_params",
    "run_level4",
    "x_format",
]
