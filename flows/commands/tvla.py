"""``aimcflow tvla``: fixed-vs-random Welch t-test on simulated power traces of a MAC.

Power model: per clock edge, the Hamming distance of every register of the design (all
``sync``-domain signals, exported by ``cosim.tvla.probe``), summed; with ``--power-model
nets`` also of every named combinational signal.  The registers model is blind to
combinational nets by construction: a mask flaw visible only between registers (a Goubin
gamma reused across loads, an unmasked value formed on a wire) needs ``nets``; neither
model sees glitches.  The traces come from
a native Verilator program generated and built on first use (cached under ``.cache/tvla``);
Python only reads its progress.  Writes ``results.json`` (SPEC.md keys plus details) and
``tvla.png`` (max |t| vs traces with the 4.5 threshold) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from aimcflow.flows.args import add_out_arg, bounded_int
from aimcflow.flows.io import prepare_out_dir, shown, write_atomic_with, write_json_atomic
from aimcflow.models.errors import UserInputError

THRESHOLD = 4.5
MAX_TRACES = 10_000_000  # about an hour at the harness's ~3000 traces/s
MAX_LANES = 256  # the MAC's adder trees (and the Verilator build) grow with the lanes
MIN_TRACES = 4  # pairs of {fixed, random}: 4 traces give each class the 2 a variance needs


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tvla",
        help="side-channel leakage assessment (TVLA) of plain_mac / secure_mac",
        description="Fixed-vs-random Welch t-test (TVLA) on register-toggle power traces of a MAC, "
        "simulated by a compiled Verilator harness; writes results.json and tvla.png.",
    )
    p.add_argument("--design", required=True, choices=("plain_mac", "secure_mac"))
    p.add_argument(
        "--secret",
        required=True,
        choices=("weight", "activation"),
        help="the input held fixed in the fixed class (the other is always random)",
    )
    p.add_argument(
        "--traces",
        type=bounded_int(MIN_TRACES, MAX_TRACES),
        default=100_000,
        metavar="N",
        help=f"number of dot products simulated: {MIN_TRACES}..{MAX_TRACES} (default 100000)",
    )
    p.add_argument(
        "--order",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: t-test on the samples; 2: on the centred squares (default 1)",
    )
    p.add_argument(
        "--lanes",
        type=bounded_int(1, MAX_LANES),
        default=64,
        metavar="N",
        help=f"dot-product length of the MAC: 1..{MAX_LANES} (default 64)",
    )
    p.add_argument(
        "--power-model",
        choices=("registers", "nets"),
        default="registers",
        help="registers: Hamming distance of every register per clock edge; nets: also of "
        "every named combinational signal (default registers).  The registers model cannot "
        "see combinational logic: a flaw that shows only on nets between registers (e.g. a "
        "Goubin conversion reusing its gamma across loads, or one that forms the unmasked "
        "value on a wire) passes it; use nets for those (settled values only: glitches and "
        "coupling are modelled by neither)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the harness's input randomness")
    add_out_arg(p, "tvla")
    p.set_defaults(func=run)


def _plot(path, design: str, secret: str, order: int, curve) -> None:
    # lazy: matplotlib (kept out of ``aimcflow --help``)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib (kept out of ``aimcflow --help``)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [c[0] for c in curve]
    ax.plot(xs, [c[1] for c in curve], marker=".", lw=1, label=f"{design}, secret = {secret}")
    ax.axhline(THRESHOLD, color="r", ls="--", lw=1, label="|t| = 4.5")
    ax.set_xscale("log")
    ax.set_xlabel("traces")
    ax.set_ylabel(f"max |t| (order {order})")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120), suffix=".png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.seed < 2**63:
        raise UserInputError(f"--seed {args.seed}: give an integer in 0..2**63-1")

    # lazy: amaranth, tqdm (kept out of ``aimcflow --help``)
    from aimcflow.cosim.tvla.build import build_harness, run_harness
    from tqdm import tqdm

    out = prepare_out_dir(args.out, "tvla", args.force)
    print(
        f"tvla: elaborating {args.design} ({args.lanes} lanes) and its Verilator harness "
        "(built once per design, then cached) ...",
        file=sys.stderr,
        flush=True,
    )
    h = build_harness(args.design, args.lanes, args.power_model)
    with tqdm(
        total=args.traces, unit="trace", unit_scale=True, desc=f"tvla {args.design}/{args.secret}"
    ) as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        r = run_harness(h, args.traces, args.secret, args.order, args.seed, progress=progress)
    results = {
        "design": args.design,
        "secret": args.secret,
        "traces": r.traces,
        "max_abs_t": r.max_abs_t,
        "curve": [[n, t] for n, t in r.curve],
        "traces_per_s": r.traces_per_s,
        "order": args.order,
        "threshold": THRESHOLD,
        "leaks": r.max_abs_t > THRESHOLD,
        "first_cross": r.first_cross,
        "lanes": args.lanes,
        "seed": args.seed,
        "samples_per_trace": h.samples,
        "cycles_per_dot_product": h.samples,
        "power_model": h.power_model,
        "register_bits": h.state_bits,  # probed bits: registers (+ nets for power_model nets)
        "registers": h.registers,
        "sim_s": r.seconds,
        "sim_cpu_s": r.cpu_seconds,
        "traces_per_cpu_s": r.traces_per_cpu_s,
        "verilator_build_s": h.build_s,
        "build_cached": h.cached,
    }
    _plot(out / "tvla.png", args.design, args.secret, args.order, r.curve)
    write_json_atomic(out / "results.json", results)
    verdict = (
        f"LEAKS (crossed 4.5 after {r.first_cross} traces)"
        if r.first_cross
        else "no leakage detected"
    )
    print(
        f"{args.design} secret={args.secret} order={args.order} power={h.power_model}: max|t| = {r.max_abs_t:.2f} "
        f"after {r.traces} traces, {verdict}; {r.traces_per_s:,.0f} traces/s -> {shown(out)}"
    )
    return 0
