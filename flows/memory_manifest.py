"""The memory manifest ``aimcflow generate`` writes: every memory array of every generated
block (depth x width, ports, read-during-write behaviour, the macros it becomes with
``--memories macro``), as JSON and as a Markdown table."""

from __future__ import annotations

from typing import Any


def manifest(blocks: list, style: str) -> dict[str, Any]:
    """JSON-ready manifest of the :class:`~aimcflow.cosim.blocks.GeneratedBlock` list."""
    from aimcflow.rtl.memories import MACRO_MAX_DEPTH, MACRO_MAX_WIDTH  # lazy: amaranth

    return {
        "style": style,
        "macro_limits": {"max_width_bits": MACRO_MAX_WIDTH, "max_depth_words": MACRO_MAX_DEPTH},
        "macro_interface": "clk, we, waddr, wdata, re, raddr, rdata: read latency 1, rdata "
        "held while !re, read-first on a same-address write (docs/SPEC.md)",
        "blocks": {
            b.name: {
                "module": b.module,
                "memories": b.memories,
                "bits": sum(m["bits"] for m in b.memories),
            }
            for b in blocks
        },
    }


def macro_models(blocks: list, blackbox: bool = False) -> dict[str, str]:
    """Behavioural Verilog (or, with ``blackbox``, port lists) of every SRAM macro the
    blocks instantiate, by module name, each macro once (empty when no block uses macros)."""
    from aimcflow.rtl.memories import macro_module, macro_verilog  # lazy: amaranth

    sizes = sorted(
        {
            (m["macro"]["depth"], m["macro"]["width"])
            for b in blocks
            for m in b.memories
            if m["style"] == "macro"
        }
    )
    return {macro_module(d, w): macro_verilog(d, w, blackbox=blackbox) for d, w in sizes}


def markdown(man: dict[str, Any]) -> str:
    """The manifest as a Markdown table per block."""
    lim = man["macro_limits"]
    lines = [
        "# Memory arrays",
        "",
        f"Built as **{man['style']}**.  Every array has one write port and one synchronous "
        "read port with enable (read latency 1 clock, data held while the enable is low), "
        "all on the one clock.  With `--memories macro` each array becomes 1R1W SRAM macros "
        f"of at most {lim['max_width_bits']}-bit words and {lim['max_depth_words']} words "
        f"(interface: {man['macro_interface']}).",
        "",
    ]
    for name, blk in man["blocks"].items():
        lines += [f"## {name} (`{blk['module']}`)", ""]
        if not blk["memories"]:
            lines += ["No memory arrays (all state in registers).", ""]
            continue
        lines += [
            "| array | depth x width | bits | read during write | macro | banks (w x d) |",
            "|---|---|---|---|---|---|",
        ]
        for m in blk["memories"]:
            mac = m["macro"]
            lines.append(
                f"| `{m['name']}` | {m['depth']} x {m['width']} | {m['bits']} | "
                f"{m['read_during_write']} | `{mac['module']}` | "
                f"{mac['width_banks']} x {mac['depth_banks']} |"
            )
        lines += ["", f"Total: {blk['bits']} bits.", ""]
    return "\n".join(lines)
