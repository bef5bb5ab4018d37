"""Analog behavioral models: devices, the crossbar tile, converters, IR drop.

* ``devices``   — what a device is: programming noise, drift, read noise (PCM, FTJ,
  ReRAM, ECRAM, ideal presets, each citing its source).
* ``converters``— DAC/ADC code maps and quantizers, ADC latency and energy figures.
* ``irdrop``    — aihwkit's fast IR-drop approximation and an exact nodal solve.
* ``tile``      — ``AnalogTile``: weights -> conductances -> DAC, MVM, IR drop, noise,
  ADC, with aihwkit's noise and bound management at the "analog-float" level and the
  integer ``forward_codes`` path for the golden/RTL levels.
* ``tiled``     — ``TiledMatrix``: layers larger than a tile.
* ``vmm_experiment`` — the FTJ thesis' VMM-error experiment (``aimcflow vmm``).
* ``pulsed``    — pulsed-update (training) models.
"""
