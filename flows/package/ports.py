"""Port and bit-field tables of each generated top, from the Amaranth signatures and
layouts (Markdown + JSON), and a WaveDrom waveform of each stream handshake.

The Verilog has flat buses (``x__payload[64:0]``); the table says which bits are which
field, LSB first, with signedness, so a designer can wire them without reading the RTL.
"""

from __future__ import annotations

from pathlib import Path

from aimcflow.cosim.blocks import BLOCKS, block_params
from aimcflow.models.io import write_json_atomic, write_text_atomic
from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring

from .sdc import Port


def _fields(layout, base: str = "", offset: int = 0) -> list[dict]:
    """Leaf fields of a layout: name, LSB, width, signedness (LSB-first)."""
    if isinstance(layout, data.StructLayout):
        out = []
        for name, f in layout:
            out += _fields(f.shape, f"{base}.{name}" if base else str(name), offset + f.offset)
        return out
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        out = []
        for i in range(layout.length):
            out += _fields(layout.elem_shape, f"{base}[{i}]", offset + i * w)
        return out
    s = Shape.cast(layout)
    return [{"field": base or "(whole)", "lsb": offset, "width": s.width, "signed": s.signed}]


def _latencies(block: str) -> list[dict]:
    """Handshake-to-handshake latencies the RTL documents (clock cycles)."""
    from aimcflow.rtl.nmpu import LATENCY  # lazy: amaranth RTL import next to its use

    nmpu = {
        "from": "i",
        "to": "o",
        "cycles": LATENCY,
        "rule": "a last-row-tile input beat transferred at edge n gives its output "
        "beat valid after LATENCY edges (rtl/nmpu.py)",
    }
    mgmt = [
        {
            "from": "x",
            "to": "dac",
            "cycles": 1,
            "rule": "the first DAC beat of a segment is valid in the clock after the "
            "segment's last x beat when idle (rtl/mgmt.py)",
        },
    ]
    return {"nmpu": [nmpu], "mgmt": mgmt, "periphery_top": mgmt}.get(block, [])


def component_ports(component) -> tuple[list[dict], list[dict]]:
    """(ports, streams) of a component: every Verilog port with its fields."""
    ports: list[dict] = [
        {
            "port": "clk",
            "direction": "input",
            "width": 1,
            "side": "clk",
            "fields": [{"field": "clock, rising edge", "lsb": 0, "width": 1, "signed": False}],
        },
        {
            "port": "rst",
            "direction": "input",
            "width": 1,
            "side": "rst",
            "fields": [
                {"field": "synchronous reset, active high", "lsb": 0, "width": 1, "signed": False}
            ],
        },
    ]
    streams = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(map(str, path))
        shape = value.shape() if hasattr(value, "shape") else Shape.cast(member.shape)
        width = Shape.cast(shape).width
        d = "input" if member.flow == wiring.In else "output"
        ports.append(
            {
                "port": name,
                "direction": d,
                "width": width,
                "side": Port(name, d, width).side,
                "fields": _fields(shape),
            }
        )
    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            # a stream member's flow is the payload's direction
            streams.append(
                {"stream": name, "direction": "input" if member.flow == wiring.In else "output"}
            )
    return ports, streams


def _wave(module: str, s: dict) -> dict:
    n = s["stream"]
    return {
        "signal": [
            {"name": "clk", "wave": "p........"},
            {"name": f"{n}__valid", "wave": "01...0.10"},
            {"name": f"{n}__ready", "wave": "1.0.1...."},
            {"name": f"{n}__payload", "wave": "x3.45x.6x", "data": ["A", "B", "C", "D"]},
        ],
        "head": {
            "text": f"{module}.{n} ({s['direction']}): a beat transfers at a rising edge "
            "with valid & ready high; B waits two cycles for ready"
        },
        "foot": {"text": "A, B, C, D transfer; valid never drops before its beat is taken"},
    }


def _latency_wave(module: str, lat: dict) -> dict:
    c = lat["cycles"]
    return {
        "signal": [
            {"name": "clk", "wave": "p" + "." * (c + 3)},
            {"name": f"{lat['from']} (valid & ready)", "wave": "010" + "." * (c + 1)},
            {"name": f"{lat['to']}__valid", "wave": "0" + "." * c + "10" + "." * (2 - (c == 0))},
        ],
        "head": {"text": f"{module}: {lat['from']} -> {lat['to']} latency {c} cycles"},
        "foot": {"text": lat["rule"]},
    }


def _markdown(module: str, ports: list[dict], lats: list[dict]) -> str:
    lines = [
        f"# Ports of `{module}`",
        "",
        "Bits LSB first; one clock `clk`, reset `rst` (see CLOCK_RESET.md).",
        "",
        "| port | dir | width | side | field | bits | signed |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ports:
        for i, f in enumerate(p["fields"]):
            hi = f["lsb"] + f["width"] - 1
            bits = f"[{hi}:{f['lsb']}]" if f["width"] > 1 else f"[{f['lsb']}]"
            head = (
                (f"`{p['port']}`", p["direction"], str(p["width"]), p["side"])
                if i == 0
                else ("", "", "", "")
            )
            lines.append(
                f"| {' | '.join(head)} | {f['field']} | {bits} | {'yes' if f['signed'] else 'no'} |"
            )
    if lats:
        lines += ["", "## Latencies", ""]
        lines += [
            f"- `{x['from']}` -> `{x['to']}`: {x['cycles']} cycles ({x['rule']})" for x in lats
        ]
    return "\n".join(lines) + "\n"


def _silence(comp) -> None:
    """Built for its signature only, never elaborated: no "created but never used" warning
    (Amaranth's MustUse flag) for it or the sub-blocks it made."""
    for obj in (comp, *vars(comp).values()):
        if hasattr(obj, "_MustUse__silence"):
            obj._MustUse__silence = True


def port_tables(cfg, blocks, out: Path) -> dict:
    """Write ``ports/<module>.md`` and ``waves/<module>_<stream>.json`` for ``blocks``;
    return the JSON tables for the manifest."""
    result = {}
    for b in blocks:
        comp = BLOCKS[b.name].component(block_params(cfg, b.name))
        ports, streams = component_ports(comp)
        _silence(comp)
        lats = _latencies(b.name)
        write_text_atomic(out / "ports" / f"{b.module}.md", _markdown(b.module, ports, lats))
        waves = []
        for s in streams:
            f = f"waves/{b.module}_{s['stream']}.json"
            write_json_atomic(out / f, _wave(b.module, s))
            waves.append(f)
        for lat in lats:
            f = f"waves/{b.module}_latency_{lat['from']}_{lat['to']}.json"
            write_json_atomic(out / f, _latency_wave(b.module, lat))
            waves.append(f)
        result[b.name] = {
            "ports": ports,
            "streams": streams,
            "latencies": lats,
            "markdown": f"ports/{b.module}.md",
            "wavedrom": waves,
        }
    return result
