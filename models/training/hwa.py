"""Hardware-aware training (HWA): the float model trained with the tile's forward
non-idealities injected, as aihwkit's hardware-aware training and the FTJ thesis
(docs/ARCHITECTURE.md, References; §3.4.4) do.

Every ``nn.Linear`` and ``nn.Conv2d`` (through im2col, the rows the converter feeds the
tiles, :mod:`aimcflow.models.nn.convert`) computes, in training mode, what the
analog-float level (:class:`~aimcflow.models.analog.tile.AnalogTile.forward_float`)
computes for its weight matrix ``W`` (inputs, outputs) under the accelerator config, per
tile (``tile.rows`` x ``tile.cols`` blocks, row tiles summed digitally):

1. weight mapping: ``W_norm = clip(W / w_scale, -1, 1)``, ``w_scale = w_clip * max|W|``
   of the tile or of each column (``tile.weight_scaling``); a differential pair
   ``G+ = max(W_norm, 0) g_max``, ``G- = max(-W_norm, 0) g_max``;
2. weight noise: both conductances programmed by the configured device model
   (:meth:`~aimcflow.models.analog.devices.DeviceModel.program`, its programming-noise
   formula, scaled by ``device.prog_noise_scale``), one draw per mini-batch and layer, as
   aihwkit's weight modifier (``per_batch_sample`` off); ``W_eff = (G+ - G-) / g_max``;
3. noise management (``mgmt.float_noise = "abs_max"``: the input row divided by its
   max |x|), DAC (round half up to the step ``dac.bound / (2**(dac.bits-1) - 1)``, clip at
   ``+-dac.bound``), the product with ``W_eff``, output noise of std
   ``sqrt(out_noise**2 + (w_noise ||x_dac||_2)**2)`` (normalized output units), ADC
   (round half up to the step ``adc.bound / (2**(adc.bits-1) - 1)``, clip at
   ``+-adc.bound``), iterative bound management (``mgmt.float_bound``: rows with an
   output beyond the bound are redone at half the input, the tile's stop rule);
4. the result rescaled by the row's scale and ``w_scale``; the bias added digitally.

The quantizers follow the float-level converter rule of
:mod:`aimcflow.models.analog.converters` (computed by ``fused.dac`` / ``fused.pass_tail``)
in the same float32 operations, so with the noise off a layer's forward equals the tile's
(tests/test_hwa.py).  Not injected: IR drop, ADC gain/offset mismatch, drift and read
noise (inference-time effects the training does not see, as in the thesis' recipe).

Backward (the thesis: "the backward and update parts are performed in FP32 precision"):
a straight-through estimator, the gradient of the plain product with the noisy weights,
``x @ (W + dW)`` with ``dW`` the programming noise in layer units.  After every
optimizer step the weights are clipped at ``clip_sigma`` standard deviations of their
layer (aihwkit's ``WeightClipType.LAYER_GAUSSIAN``, default sigma 2.5), so a few large
weights do not set ``w_scale`` and shrink every other weight towards the noise floor.

``noise_scale`` multiplies every injected noise (the thesis trained its ResNet-32 at three
times the device noise).  Noise comes from one torch generator seeded from
``models/rng.py`` (purpose ``hwa``, keyed by the config seed and the training seed), so a
run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from aimcflow.models import rng
from aimcflow.models.analog import converters
from aimcflow.models.analog.devices import DeviceModel, get_device
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.data import Dataset
from aimcflow.models.nn.workloads import Recipe, train
from torch import nn

MAX_NOISE_SCALE = 100.0
MAX_CLIP_SIGMA = 100.0
DEFAULT_CLIP_SIGMA = 2.5  # aihwkit WeightClipParameter.sigma default
_F32 = torch.float32


@dataclass(frozen=True)
class HwaSpec:
    """What the HWA forward injects: the tile of ``cfg`` and the training knobs.

    ``noise_scale`` (>= 0) multiplies programming, output and short-term weight noise;
    ``clip_sigma`` (> 0, or 0 for none) the per-layer weight clip in standard deviations.
    """

    cfg: AcceleratorConfig
    noise_scale: float = 1.0
    clip_sigma: float = DEFAULT_CLIP_SIGMA

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_scale <= MAX_NOISE_SCALE:
            raise UserInputError(
                f"HWA noise scale {self.noise_scale}: allowed 0 .. {MAX_NOISE_SCALE}"
            )
        if not 0.0 <= self.clip_sigma <= MAX_CLIP_SIGMA:
            raise UserInputError(
                f"HWA weight clip {self.clip_sigma} sigma: allowed 0 (off) .. {MAX_CLIP_SIGMA}"
            )

    @property
    def device(self) -> DeviceModel:
        return get_device(self.cfg.device.preset, self.cfg.device.g_max_siemens)

    @property
    def prog_scale(self) -> float:
        """Programming-noise multiplier (0 when the config turns programming noise off)."""
        c = self.cfg
        return c.device.prog_noise_scale * self.noise_scale if c.noise.programming else 0.0


def _slices(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _lsb32(bits: int, bound: float) -> torch.Tensor:
    return torch.tensor(converters.lsb(bits, bound), dtype=_F32)


def _round_half_up(v: torch.Tensor) -> torch.Tensor:
    """floor(v + 1/2): converters.round_half_up, float32."""
    return torch.floor(v + 0.5)


def dac(x: torch.Tensor, prescale: torch.Tensor, spec: HwaSpec) -> torch.Tensor:
    """Float DAC of rows x (R, n) float32 with per-row prescale (R,) float32:
    clip(floor(x * f32(prescale / step) + 1/2) * step, -bound, bound), the float32
    operations of ``fused.dac`` (the converter rule of ``converters``)."""
    d = spec.cfg.dac
    step = _lsb32(d.bits, d.bound)
    f = prescale.to(_F32) / step
    v = _round_half_up(x.to(_F32) * f[:, None]) * step
    return v.clamp(-d.bound, d.bound)


def adc(y: torch.Tensor, spec: HwaSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Float ADC of outputs y (R, m) float32 (normalized output units): codes
    floor(y / LSB + 1/2) clipped at +-(2**(bits-1) - 1) (float32) and per row whether any
    code lay beyond (saturation, before clipping), as ``fused.pass_tail``."""
    a = spec.cfg.adc
    cmax = float((1 << (a.bits - 1)) - 1)
    inv_lsb = torch.tensor(1.0, dtype=_F32) / _lsb32(a.bits, a.bound)
    q = _round_half_up(y.to(_F32) * inv_lsb)
    sat = ((q > cmax) | (q < -cmax)).any(dim=1)
    return q.clamp(-cmax, cmax), sat


def _w_scale(w: torch.Tensor, spec: HwaSpec) -> torch.Tensor:
    """(cols,) w_clip * max|W| of the tile block or of each column (zero columns: 1)."""
    t = spec.cfg.tile
    a = w.abs().amax() if t.weight_scaling == "global" else w.abs().amax(dim=0)
    a = torch.broadcast_to(a, (w.shape[1],)).clone()
    a[a == 0] = 1.0
    return a * t.w_clip


def programmed_weights(w_norm: torch.Tensor, spec: HwaSpec, gen: torch.Generator) -> torch.Tensor:
    """W_eff = (G+ - G-) / g_max of one programming of the normalized block w_norm
    (rows, cols), drawn with ``gen``: the device model's ``program`` on both conductances
    (its formula, not a copy).  No gradient (a constant offset to the weights)."""
    if spec.prog_scale == 0.0:
        return w_norm.detach().clone()
    dev = spec.device
    wn = w_norm.detach().double()
    g_t = (torch.stack([wn.clamp(min=0.0), (-wn).clamp(min=0.0)]) * dev.g_max_siemens).numpy()
    z = torch.randn(g_t.shape, generator=gen, dtype=torch.float64).numpy()
    g_p = dev.program(g_t, z, spec.prog_scale)
    return torch.from_numpy((g_p[0] - g_p[1]) / dev.g_max_siemens).to(w_norm.dtype)


def tile_forward(
    x: torch.Tensor, w: torch.Tensor, spec: HwaSpec, gen: torch.Generator | None
) -> torch.Tensor:
    """One tile block: x (R, rows) in layer units, w (rows, cols) -> (R, cols) in layer
    units, the analog-float forward with the noise of ``gen`` (None: no noise at all)."""
    ws = _w_scale(w.detach(), spec)
    w_norm = (w.detach() / ws).clamp(-1.0, 1.0)
    noisy = gen is not None
    w_eff = programmed_weights(w_norm, spec, gen) if noisy else w_norm
    # straight-through: the plain product with the noisy weights carries the gradient
    y_lin = x.to(w.dtype) @ (w + (w_eff - w_norm).to(w.dtype) * ws)
    with torch.no_grad():
        y_hw = _analog(x.detach().to(_F32), w_eff.to(_F32), ws.to(_F32), spec, gen)
    return y_lin + (y_hw.to(y_lin.dtype) - y_lin).detach()


def _analog(
    x: torch.Tensor, w_eff: torch.Tensor, ws: torch.Tensor, spec: HwaSpec, gen
) -> torch.Tensor:
    """NM, DAC, MVM, output noise, ADC, bound management, rescale: float32 up to the
    codes, then float64(code * f32(scale * LSB)) * float64(w_scale), as the tile."""
    cfg = spec.cfg
    b = x.shape[0]
    if cfg.mgmt.float_noise == "abs_max":
        s = x.abs().amax(dim=1)
    else:
        s = torch.ones(b, dtype=_F32)
    out = torch.zeros((b, w_eff.shape[1]), dtype=torch.float64)
    colf = ws.to(_F32).double()
    pend = torch.nonzero(s >= torch.finfo(_F32).tiny).reshape(-1)
    bm = cfg.mgmt.float_bound == "iterative"
    in_lsb = converters.lsb(cfg.dac.bits, cfg.dac.bound)
    out_lsb = _lsb32(cfg.adc.bits, cfg.adc.bound)
    bm_limit = cfg.mgmt.max_bm_res / in_lsb
    out_sigma = cfg.noise.out_noise * spec.noise_scale
    w_sigma = cfg.noise.w_noise * spec.noise_scale
    red = 1.0
    while pend.numel():
        scale = s[pend] * torch.tensor(red, dtype=_F32)
        xq = dac(x[pend], torch.tensor(1.0, dtype=_F32) / scale, spec)
        y = xq @ w_eff
        if gen is not None and (out_sigma > 0 or w_sigma > 0):
            sig = torch.sqrt(out_sigma**2 + (w_sigma * torch.linalg.vector_norm(xq, dim=1)) ** 2)
            y = y + sig[:, None] * torch.randn(y.shape, generator=gen, dtype=_F32)
        codes, sat = adc(y, spec)
        out[pend] = (codes * (scale * out_lsb)[:, None]).double() * colf
        last = not bm or int(red) > cfg.mgmt.max_bm_factor or red > bm_limit
        if last:
            break
        pend = pend[sat]
        red *= 2.0
    return out


def matrix_forward(
    x: torch.Tensor, w: torch.Tensor, spec: HwaSpec, gen: torch.Generator | None
) -> torch.Tensor:
    """x (R, in) @ w (in, out) on tile.rows x tile.cols tiles, row tiles summed."""
    t = spec.cfg.tile
    cols = []
    for cs in _slices(w.shape[1], t.cols):
        acc = None
        for rs in _slices(w.shape[0], t.rows):
            part = tile_forward(x[:, rs], w[rs, cs], spec, gen)
            acc = part if acc is None else acc + part
        cols.append(acc)
    return torch.cat(cols, dim=1)


class HwaLinear(nn.Module):
    """A Linear layer whose training forward is the analog tile's (eval: the plain layer)."""

    def __init__(self, inner: nn.Linear, spec: HwaSpec, gen: torch.Generator):
        super().__init__()
        self.inner, self.spec, self.gen = inner, spec, gen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.inner(x)
        lead = x.shape[:-1]
        y = matrix_forward(x.reshape(-1, x.shape[-1]), self.inner.weight.t(), self.spec, self.gen)
        if self.inner.bias is not None:
            y = y + self.inner.bias
        return y.reshape(*lead, y.shape[-1])


class HwaConv2d(nn.Module):
    """A Conv2d whose training forward is the analog tile's on its im2col rows (one row
    per output position, in torch's ``weight.reshape(out, -1)`` order, as the converter)."""

    def __init__(self, inner: nn.Conv2d, spec: HwaSpec, gen: torch.Generator):
        super().__init__()
        if inner.groups != 1 or inner.padding_mode != "zeros" or isinstance(inner.padding, str):
            raise UserInputError(
                "HWA training supports Conv2d with groups=1, zero padding given as numbers; "
                f"got groups={inner.groups}, padding={inner.padding!r}, "
                f"padding_mode={inner.padding_mode!r}"
            )
        self.inner, self.spec, self.gen = inner, spec, gen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.inner
        if not self.training:
            return c(x)
        b, _, h, w_in = x.shape
        kh, kw = c.kernel_size
        cols = F.unfold(x, (kh, kw), c.dilation, c.padding, c.stride)  # (B, C*kh*kw, L)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        y = matrix_forward(rows, c.weight.reshape(c.out_channels, -1).t(), self.spec, self.gen)
        if c.bias is not None:
            y = y + c.bias
        ho = (h + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) // c.stride[0] + 1
        wo = (w_in + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) // c.stride[1] + 1
        return y.reshape(b, ho * wo, -1).transpose(1, 2).reshape(b, -1, ho, wo)


def _analog_children(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                yield parent, name, child


def wrap(model: nn.Module, spec: HwaSpec, gen: torch.Generator) -> list[tuple]:
    """Replace every Linear / Conv2d of ``model`` in place by its HWA version; returns
    what :func:`unwrap` needs to put the original layers (sharing the parameters) back."""
    swaps = list(_analog_children(model))
    if not swaps:
        raise UserInputError("HWA training: the model has no Linear or Conv2d layer")
    for parent, name, child in swaps:
        cls = HwaConv2d if isinstance(child, nn.Conv2d) else HwaLinear
        setattr(parent, name, cls(child, spec, gen))
    return swaps


def unwrap(swaps: list[tuple]) -> None:
    for parent, name, child in swaps:
        setattr(parent, name, child)


def clip_weights(model: nn.Module, sigma: float) -> None:
    """Clip each Linear / Conv2d weight at +-sigma times its layer's std (sigma 0: no-op)."""
    if sigma <= 0:
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                lim = sigma * float(m.weight.std())
                if math.isfinite(lim) and lim > 0:
                    m.weight.clamp_(-lim, lim)


def generator(seed: int, train_seed: int = 0) -> torch.Generator:
    """The HWA noise generator, seeded from the keyed stream (config seed, "hwa",
    training seed)."""
    g = rng.stream(seed, "hwa", train_seed)
    return torch.Generator().manual_seed(int(g.integers(1 << 62)))


def finetune(
    model: nn.Module, recipe: Recipe, data: Dataset, spec: HwaSpec, on_epoch=None
) -> nn.Module:
    """Hardware-aware training of ``model`` (a trained float model, continued in place)
    for ``recipe.epochs`` epochs with ``recipe``'s optimizer settings
    (:func:`aimcflow.models.nn.workloads.train`), the tile forward of ``spec`` in every
    Linear / Conv2d and the weight clip after every step; returns it in eval mode with
    its original (plain torch) layers, so it exports like any float model."""
    gen = generator(spec.cfg.seed, recipe.seed)
    clip_weights(model, spec.clip_sigma)
    swaps = wrap(model, spec, gen)
    try:
        train(
            recipe,
            data,
            on_epoch,
            model=model,
            after_step=lambda m: clip_weights(m, spec.clip_sigma),
        )
    finally:
        unwrap(swaps)
    return model.eval()
