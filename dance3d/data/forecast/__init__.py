"""Forecasting data: synthetic fields (``storms``, ``traffic``, ``weather``), field series read from
real file formats and shipped real grids (``series``, ``readers``), and their windowing into
``T_in -> T_out`` samples (``windows``); ``data.build_forecast_dataset`` picks one by source."""
