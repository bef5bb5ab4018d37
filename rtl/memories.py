"""The blocks' memory arrays: one description per array, built as flip-flops or as macros.

Every ``amaranth.lib.memory.Memory`` of a block is declared by a :class:`MemorySpec`
(name, word layout, depth, read-during-write behaviour); the block's ``memory_specs()``
returns them and its ``elaborate`` builds each through :func:`memory_1r1w`, so the
manifest ``aimcflow generate`` writes and the hardware come from one description.

Two styles (``memories`` field of the block parameters):

``flops``
    A plain ``Memory`` with one write port and one synchronous read port.  Yosys and every
    synthesis flow without a memory compiler turn it into flip-flops; the Verilog is the
    same as before this module existed.
``macro``
    The array becomes instances of SRAM macros with a standard 1R1W interface
    (:func:`macro_verilog` gives their behavioural models for simulation, and the port
    list a memory compiler's macro has to match).  The word is cut into banks of at most
    :data:`MACRO_MAX_WIDTH` bits and the depth into banks of at most
    :data:`MACRO_MAX_DEPTH` words.  A transparent read (new data on a read of the word
    written in the same clock) is made by a bypass register around the macro, so the
    macro itself never has to return the new data.

Macro interface (every port on the rising edge of ``clk``)::

    we, waddr[A-1:0], wdata[W-1:0]   write wdata to word waddr when we
    re, raddr[A-1:0], rdata[W-1:0]   rdata <= word raddr when re; rdata holds when !re

A read of the word being written in the same clock returns the OLD word (read-first).
The non-transparent arrays rely on that; a compiled macro whose collision result is
undefined needs the write delayed by a clock in its wrapper.

Limits, and why: 64-bit words and 1024 words per bank.  Open SRAM compilers and the
register-file generators of commercial flows make macros of 8 to 64-bit words with
column muxing, and wider words cost more in sense amplifiers than two macros side by
side; 1024 words keeps a 64-bit bank at 64 kbit, where the bit-line length (and so the
read time) stays within one clock of the periphery (``clock.period_ns``, 10 ns).  The
NMPU's coefficient words (8 lanes x 40 bits = 320 bits) are therefore five banks wide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Shape, ShapeLike, Signal, Value
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.utils import ceil_log2

MACRO_MAX_WIDTH = 64
"""Widest macro word (bits); wider words are split into banks side by side."""
MACRO_MAX_DEPTH = 1024
"""Deepest macro (words); deeper arrays are split into banks selected by the address."""
MEMORY_STYLES = ("flops", "macro")


def check_style(style: str) -> None:
    """ValueError unless ``style`` is one of :data:`MEMORY_STYLES`."""
    if style not in MEMORY_STYLES:
        raise ValueError(f"memories = {style!r}; allowed: {', '.join(MEMORY_STYLES)}")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _addr_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


@dataclass(frozen=True)
class MemorySpec:
    """One array: ``depth`` words of layout ``shape``; one write port and one synchronous
    read port with enable (read latency 1 clock, data held while the enable is low).
    ``transparent``: a read of the word written in the same clock returns the new word
    (else the old one)."""

    name: str
    shape: ShapeLike
    depth: int
    transparent: bool
    #: ``flops`` or ``macro`` (:data:`MEMORY_STYLES`)
    style: str = "flops"
    #: name stems of the write and read port signals in the Verilog; the default is the
    #: name Amaranth gives ports whose variable it cannot trace (kept so the flops Verilog
    #: stays what it was before this module)
    port_names: tuple[str, str] = ("$signature", "$signature")

    def __post_init__(self) -> None:
        check_style(self.style)

    @property
    def width(self) -> int:
        return Shape.cast(self.shape).width

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def width_banks(self) -> int:
        return _ceil_div(self.width, MACRO_MAX_WIDTH)

    @property
    def depth_banks(self) -> int:
        return _ceil_div(self.depth, MACRO_MAX_DEPTH)

    @property
    def macro_width(self) -> int:
        """Word width of each macro: the word split evenly, rounded up (the last bank's
        top bits are unused when the split is uneven)."""
        return _ceil_div(self.width, self.width_banks)

    @property
    def macro_depth(self) -> int:
        """Words of each macro: the whole array, or :data:`MACRO_MAX_DEPTH` (a power of two,
        so the address splits into bank select and word) when it takes several banks."""
        return self.depth if self.depth_banks == 1 else MACRO_MAX_DEPTH

    def macro_name(self, prefix: str = "aimcflow") -> str:
        return macro_module(self.macro_depth, self.macro_width, prefix)

    def prefixed(self, prefix: str) -> MemorySpec:
        """The same array seen from a parent block (``prefix.name``)."""
        return replace(self, name=f"{prefix}.{self.name}")

    def describe(self) -> dict:
        """JSON-ready description for the memory manifest."""
        return {
            "name": self.name,
            "depth": self.depth,
            "width": self.width,
            "bits": self.bits,
            "ports": {"write": 1, "read": 1, "clock": "sync", "read_latency": 1},
            "read_enable": True,
            "read_during_write": "new data (transparent)" if self.transparent else "old data",
            "style": self.style,
            "macro": {
                "module": self.macro_name(),
                "depth": self.macro_depth,
                "width": self.macro_width,
                "banks": self.width_banks * self.depth_banks,
                "width_banks": self.width_banks,
                "depth_banks": self.depth_banks,
                "bypass": self.transparent,
            },
        }


def macro_module(depth: int, width: int, prefix: str = "aimcflow") -> str:
    """Verilog module name of a ``depth`` x ``width`` 1R1W macro."""
    return f"{prefix}_sram_1r1w_d{depth}_w{width}"


def memory_1r1w(m: Module, spec: MemorySpec) -> tuple[WritePort, ReadPort]:
    """Build ``spec`` in ``m`` (as ``spec.style`` says) and return its write and read port
    (``addr``/``data``/``en`` as of ``Memory.write_port()``/``read_port()``)."""
    abits = ceil_log2(spec.depth)
    wsig = WritePort.Signature(addr_width=abits, shape=spec.shape)
    rsig = ReadPort.Signature(addr_width=abits, shape=spec.shape)
    wname, rname = spec.port_names
    if spec.style == "flops":
        mem = Memory(shape=spec.shape, depth=spec.depth, init=[])
        m.submodules[spec.name] = mem
        wp = WritePort(wsig, memory=mem, domain="sync", path=(wname,))
        rp = ReadPort(
            rsig,
            memory=mem,
            domain="sync",
            transparent_for=(wp,) if spec.transparent else (),
            path=(rname,),
        )
        return wp, rp
    wp = wsig.create(path=(wname,))
    rp = rsig.create(path=(rname,))
    _macro_banks(m, spec, wp, rp)
    return wp, rp


def _macro_banks(m: Module, spec: MemorySpec, wp: WritePort, rp: ReadPort) -> None:
    """The banked macro instances behind ``wp``/``rp``, plus the read mux and bypass."""
    mw, md = spec.macro_width, spec.macro_depth
    nw, nd = spec.width_banks, spec.depth_banks
    bank_bits = _addr_bits(md)
    wdata = Signal(mw * nw, name=f"{spec.name}_wdata")
    m.d.comb += wdata.eq(Value.cast(wp.data))
    rdata_rows = []
    for r in range(nd):
        row = []
        for c in range(nw):
            q = Signal(mw, name=f"{spec.name}_q{r}_{c}")
            sel_w = wp.en if nd == 1 else wp.en & (wp.addr[bank_bits:] == r)
            sel_r = rp.en if nd == 1 else rp.en & (rp.addr[bank_bits:] == r)
            m.submodules[f"{spec.name}_bank{r}_{c}"] = Instance(
                spec.macro_name(),
                i_clk=ClockSignal("sync"),
                i_we=sel_w,
                i_waddr=wp.addr[:bank_bits] if nd > 1 else wp.addr,
                i_wdata=wdata[c * mw : (c + 1) * mw],
                i_re=sel_r,
                i_raddr=rp.addr[:bank_bits] if nd > 1 else rp.addr,
                o_rdata=q,
            )
            row.append(q)
        rdata_rows.append(row)
    words = [Cat(*row) for row in rdata_rows]
    word = Signal(mw * nw, name=f"{spec.name}_rword")
    if nd == 1:
        m.d.comb += word.eq(words[0])
    else:
        # the bank a read came from, held with the data (the macros hold rdata while !re)
        rbank = Signal(range(nd), name=f"{spec.name}_rbank")
        with m.If(rp.en):
            m.d.sync += rbank.eq(rp.addr[bank_bits:])
        with m.Switch(rbank):
            for r in range(nd):
                with m.Case(r):
                    m.d.comb += word.eq(words[r])
    if spec.transparent:
        # read of the word written in the same clock: the new word, from a register
        hit = Signal(name=f"{spec.name}_bypass")
        new = Signal(spec.width, name=f"{spec.name}_bypass_data")
        with m.If(rp.en):
            m.d.sync += [
                hit.eq(wp.en & (wp.addr == rp.addr)),
                new.eq(Value.cast(wp.data)),
            ]
        m.d.comb += rp.data.eq(Mux(hit, new, word[: spec.width]))
    else:
        m.d.comb += rp.data.eq(word[: spec.width])


def macro_specs(specs: list[MemorySpec]) -> list[tuple[int, int]]:
    """The distinct (depth, width) macros the ``macro``-style arrays of ``specs`` need."""
    return sorted({(s.macro_depth, s.macro_width) for s in specs if s.style == "macro"})


def macro_verilog(depth: int, width: int, prefix: str = "aimcflow", blackbox: bool = False) -> str:
    """Behavioural Verilog model of one 1R1W macro (the interface in the module docstring),
    or with ``blackbox`` its port list only, for synthesis that keeps macros as cells."""
    name = macro_module(depth, width, prefix)
    a = _addr_bits(depth)
    head = [
        f"// {depth} x {width} bit 1R1W synchronous SRAM macro: "
        + ("port list for synthesis" if blackbox else "behavioural model for simulation"),
        "// (read latency 1, rdata held while !re, read-first on a same-address write).",
        "(* blackbox *)" if blackbox else "",
        f"module {name}(clk, we, waddr, wdata, re, raddr, rdata);",
        "  input clk;",
        "  input we;",
        f"  input [{a - 1}:0] waddr;",
        f"  input [{width - 1}:0] wdata;",
        "  input re;",
        f"  input [{a - 1}:0] raddr;",
        f"  output reg [{width - 1}:0] rdata;",
    ]
    body = (
        []
        if blackbox
        else [
            f"  reg [{width - 1}:0] mem [0:{depth - 1}];",
            "  always @(posedge clk) begin",
            "    if (we) mem[waddr] <= wdata;",
            "    if (re) rdata <= mem[raddr];",
            "  end",
        ]
    )
    return "".join(line + "\n" for line in [*head, *body, "endmodule"] if line)


def macros_verilog(
    specs: list[MemorySpec], prefix: str = "aimcflow", blackbox: bool = False
) -> dict[str, str]:
    """Every macro model the arrays ``specs`` need: module name -> Verilog (none for flops)."""
    return {
        macro_module(d, w, prefix): macro_verilog(d, w, prefix, blackbox)
        for d, w in macro_specs(specs)
    }


def component_specs(component) -> list[MemorySpec]:
    """The arrays of a block (``memory_specs()``; none for a block without memories)."""
    specs = getattr(component, "memory_specs", None)
    return list(specs()) if specs else []
