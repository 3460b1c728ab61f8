"""Spatio-temporal forecasting: ``T_in`` past frames of a ``C x H x W`` field -> ``T_out`` future frames.

Field series from real file formats and shipped real grids (``series``, ``readers``) and their
windowing into samples (``windows``).
"""
