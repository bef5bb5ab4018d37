"""Device models: what one memristive conductance does after it is programmed.

A device model turns target conductances (siemens) into programmed ones (programming
noise), draws a drift exponent per device, and evolves conductances to a read time
(drift plus accumulated 1/f read noise).  All methods are vectorized numpy and take
standard normals from the caller, so the caller's counter-based generator decides the
randomness (``models/rng.py``) and the formulas here stay deterministic and testable.

Presets (``DEVICES``): ``pcm`` (aihwkit ``PCMLikeNoiseModel``), ``ftj-extreme``,
``ftj-balanced``, ``ftj-constrained`` (the FTJ thesis), ``reram``, ``ecram-protonic``,
``ideal``.  Each preset's docstring names its source.  Pulsed-update data (state counts,
``dw_min``, asymmetry) are carried as fields for the pulsed-update models; the inference
path does not use them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

_ZERO_CLIP = 1e-7  # aihwkit's floor on g/g_max before taking a log


@dataclass(frozen=True)
class DeviceModel:
    """Base: an ideal device (no programming noise, no drift, no read noise).

    Fields:
        name: preset name.
        g_max_siemens: conductance a normalized weight of 1 maps to (S).
        t0_s: reference time of the drift law g(t) = g_prog * ((t + t0) / t0)^-nu; time
            t counts from the end of programming (s).
        t_read_s: read duration in the 1/f noise integral (s).
        dw_min: mean weight change per update pulse, in units of w_max (pulsed models).
        n_states: distinguishable conductance states per device (pulsed models).
        up_down_asymmetry: relative difference of up vs down step (0 = symmetric).
        dw_min_dtod: device-to-device spread of dw_min (relative).
        dw_min_ctoc: cycle-to-cycle spread of one pulse's step (relative).
        linear: step independent of the current weight (constant-step device).
        source: where the numbers come from.
    """

    name: str = "ideal"
    g_max_siemens: float = 25e-6
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    dw_min: float = 0.0
    n_states: int = 0
    up_down_asymmetry: float = 0.0
    dw_min_dtod: float = 0.0
    dw_min_ctoc: float = 0.0
    linear: bool = True
    source: str = "ideal device: no non-idealities"

    # -- programming --------------------------------------------------------------------
    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        """Std of programming noise (S) at target conductances g_target (S)."""
        return np.zeros_like(g_target)

    def program(self, g_target: np.ndarray, z: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Programmed conductances (S): g_target + scale * sigma(g_target) * z, clipped at 0."""
        if scale == 0.0:
            return g_target.copy()
        return np.maximum(g_target + scale * self.programming_sigma(g_target) * z, 0.0)

    # -- drift ---------------------------------------------------------------------------
    def drift_nu(self, g_target: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Drift exponent per device (dimensionless), z standard normal."""
        return np.zeros_like(g_target)

    def drift_factor(self, nu: np.ndarray, t_s: float) -> np.ndarray:
        """((t + t0) / t0)^-nu: the multiplicative drift after t_s seconds."""
        return np.power((t_s + self.t0_s) / self.t0_s, -nu)

    # -- read noise ----------------------------------------------------------------------
    def read_sigma_rel(self, g_prog: np.ndarray, t_s: float) -> np.ndarray:
        """Relative std of the accumulated 1/f read noise at time t_s (of |g_drift|)."""
        return np.zeros_like(g_prog)

    def at_time(
        self,
        g_prog: np.ndarray,
        nu: np.ndarray,
        t_s: float,
        z: np.ndarray,
        drift_scale: float = 1.0,
        read_scale: float = 1.0,
    ) -> np.ndarray:
        """Conductances (S) t_s seconds after programming: drift then read noise, clip at 0."""
        g = g_prog * self.drift_factor(nu * drift_scale, t_s) if drift_scale else g_prog
        if read_scale:
            g = g + np.abs(g) * read_scale * self.read_sigma_rel(g_prog, t_s) * z
        return np.maximum(g, 0.0)


@dataclass(frozen=True)
class PCMDevice(DeviceModel):
    """PCM, exactly aihwkit 1.2 ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019).

    * programming: sigma = (0.26348 + 1.9650 g - 1.1731 g^2) uS * g_max / 25 uS, g = g_T/g_max;
    * drift: mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1),
      sigma_nu = clip(-0.0125 ln g - 0.0059, 0.008, 0.045), nu = |mu + sigma z|,
      g(t) = g_prog ((t + t0)/t0)^-nu, t0 = 20 s;
    * read: Q_s = min(0.0088 / max(g_prog^0.65, 1e-3), 0.2),
      sigma = Q_s sqrt(ln((t + t0 + t_read) / (2 t_read))), t_read = 250 ns, applied as
      g += |g_drift| sigma z.
    """

    name: str = "pcm"
    g_max_siemens: float = 25e-6
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    source: str = "aihwkit 1.2 PCMLikeNoiseModel (Nandakumar et al., ICECS 2019)"
    prog_coeff_us: tuple[float, float, float] = (0.26348, 1.9650, -1.1731)

    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        g = g_target / self.g_max_siemens
        c0, c1, c2 = self.prog_coeff_us
        sigma_us = (c0 + c1 * g + c2 * g * g) * (self.g_max_siemens / 25e-6)
        return sigma_us * 1e-6

    def drift_nu(self, g_target: np.ndarray, z: np.ndarray) -> np.ndarray:
        log_g = np.log(np.maximum(np.abs(g_target / self.g_max_siemens), _ZERO_CLIP))
        mu = np.clip(-0.0155 * log_g + 0.0244, 0.049, 0.1)
        sig = np.clip(-0.0125 * log_g - 0.0059, 0.008, 0.045)
        return np.abs(mu + sig * z)

    def read_sigma_rel(self, g_prog: np.ndarray, t_s: float) -> np.ndarray:
        q_s = np.minimum(
            0.0088 / np.maximum((np.abs(g_prog) / self.g_max_siemens) ** 0.65, 1e-3), 0.2
        )
        t = t_s + self.t0_s
        return q_s * np.sqrt(np.log((t + self.t_read_s) / (2.0 * self.t_read_s)))


@dataclass(frozen=True)
class FTJDevice(DeviceModel):
    """Ferroelectric tunnel junction, the FTJ thesis (docs/ARCHITECTURE.md, References; §3.1, §3.4.3).

    * G_max 14 nS (Table 3.1, ``noise_model.g_max``).
    * Drift (eq. 3.4/3.5): g(t) = g_prog (t / t_c)^-nu with the deterministic exponent
      nu(w) = 0.0122|w|^3 - 0.0241 w^2 + 0.0112|w| + 0.001, w = g_T / g_max in [0, 1].
      The thesis does not print t_c; we take t_c = 1 s and count t from the end of
      programming as aihwkit does, g(t) = g_prog ((t + t_c)/t_c)^-nu (assumption).
    * Programming noise: the thesis' FTJLikeNoiseModel keeps aihwkit's PCM programming
      polynomial and replaces only g_max and drift (§3.4.4: "PCM specific parameters
      replaced"), so sigma = PCM polynomial scaled by g_max / 25 uS (assumption, stated).
    * No 1/f read noise in the thesis model: short-term noise (3.5 %, §3.1.2, from thermal
      and shot noise, eq. 3.1/3.2) is the tile's additive ``noise.w_noise``.
    * Pulsed data (§3.1.1, §5.1): "Extreme" has the largest dw_min and is unstable in
      training; "Balanced" dw_min = 0.1, asymmetric; "Constrained" 50x smaller dw_min
      (0.002) and linear.  The thesis' response figures are lost in the text extraction,
      so extreme's dw_min (0.2) and the asymmetries are our reading, marked as such.
    """

    name: str = "ftj-balanced"
    g_max_siemens: float = 14e-9
    t0_s: float = 1.0
    t_read_s: float = 250e-9
    source: str = "FTJ thesis Table 3.1, eq. 3.4/3.5, §5.1"
    nu_coeff: tuple[float, float, float, float] = (0.0122, -0.0241, 0.0112, 0.001)

    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        return PCMDevice(g_max_siemens=self.g_max_siemens).programming_sigma(g_target)

    def drift_nu(self, g_target: np.ndarray, z: np.ndarray) -> np.ndarray:
        w = np.abs(g_target / self.g_max_siemens)
        c3, c2, c1, c0 = self.nu_coeff
        return c3 * w**3 + c2 * w**2 + c1 * w + c0


@dataclass(frozen=True)
class ReRAMDevice(DeviceModel):
    """ReRAM with write-verify: state-independent programming noise, weak drift.

    sigma_prog = 2 % of g_max at every state (state-independent, as write-verify ReRAM
    arrays report, e.g. Wan et al., "A compute-in-memory chip based on resistive
    random-access memory", Nature 608, 2022); drift nu = 0.005 +- 0.002, t0 = 1 s; read
    noise 1 % of g.  The numbers are representative assumptions, not a calibrated fit.
    """

    name: str = "reram"
    g_max_siemens: float = 40e-6
    t0_s: float = 1.0
    source: str = "assumed, state-independent write-verify ReRAM (cf. Wan et al., Nature 2022)"
    prog_sigma_rel: float = 0.02
    nu_mean: float = 0.005
    nu_std: float = 0.002
    read_rel: float = 0.01
    dw_min: float = 0.01
    n_states: int = 64
    up_down_asymmetry: float = 0.3
    linear: bool = False

    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        return np.full_like(g_target, self.prog_sigma_rel * self.g_max_siemens)

    def drift_nu(self, g_target: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.abs(self.nu_mean + self.nu_std * z)

    def read_sigma_rel(self, g_prog: np.ndarray, t_s: float) -> np.ndarray:
        return np.full_like(g_prog, self.read_rel)


@dataclass(frozen=True)
class ECRAMDevice(DeviceModel):
    """Protonic ECRAM: linear, symmetric conductance updates with low noise.

    Source: the protonic-synapse abstracts (docs/ARCHITECTURE.md, References: "Analog In-memory
    Computing with Protonic Synapses", "Symmetric PSG/WO3 Protonic Synapses"): linear and
    symmetric modulation, no drift reported.  Numbers (sigma_prog 0.5 % of g_max, 1000
    states, dw_min 0.001, symmetric) are assumptions of that order, not a fit.
    """

    name: str = "ecram-protonic"
    g_max_siemens: float = 1e-6
    t0_s: float = 1.0
    source: str = "protonic-synapse abstracts (linear, symmetric); values assumed"
    prog_sigma_rel: float = 0.005
    dw_min: float = 0.001
    n_states: int = 1000
    up_down_asymmetry: float = 0.0
    dw_min_dtod: float = 0.05
    dw_min_ctoc: float = 0.05
    linear: bool = True

    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        return np.full_like(g_target, self.prog_sigma_rel * self.g_max_siemens)


DEVICES: dict[str, DeviceModel] = {
    "ideal": DeviceModel(),
    "pcm": PCMDevice(),
    "ftj-extreme": FTJDevice(
        name="ftj-extreme",
        dw_min=0.2,
        n_states=10,
        up_down_asymmetry=0.5,
        dw_min_dtod=0.3,
        dw_min_ctoc=0.3,
        linear=False,
    ),
    "ftj-balanced": FTJDevice(
        name="ftj-balanced",
        dw_min=0.1,
        n_states=20,
        up_down_asymmetry=0.3,
        dw_min_dtod=0.3,
        dw_min_ctoc=0.3,
        linear=False,
    ),
    "ftj-constrained": FTJDevice(
        name="ftj-constrained",
        dw_min=0.002,
        n_states=1000,
        up_down_asymmetry=0.0,
        dw_min_dtod=0.3,
        dw_min_ctoc=1.0,
        linear=True,
    ),
    "reram": ReRAMDevice(),
    "ecram-protonic": ECRAMDevice(),
}


def get_device(name: str, g_max_siemens: float | None = None) -> DeviceModel:
    """The preset ``name``, with its g_max optionally overridden (S)."""
    dev = DEVICES[name]
    if g_max_siemens is not None:
        dev = replace(dev, g_max_siemens=g_max_siemens)
    return dev
