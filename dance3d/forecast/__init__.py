"""Spatio-temporal forecasting: ``T_in`` past frames of a ``C x H x W`` field -> ``T_out`` future frames.

Synthetic datasets (``storms``, ``traffic``, ``weather``), backbones (SimVP, ConvLSTM, a small
spatio-temporal Transformer), metrics with the persistence baseline, and the hooks that train,
evaluate and profile forecasters through the existing trainer, checkpoints and CLI. Field series from real file
formats and shipped real grids (``series``, ``readers``) and their windowing into samples
(``windows``).
"""
