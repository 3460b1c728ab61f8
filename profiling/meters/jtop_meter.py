"""Jetson board energy from ``jtop`` (jetson-stats 4.x) power readings, integrated here.

``jetson.power`` is ``{"rail": {name: {"volt", "curr", "power", "avg", "online", ...}}, "tot": {...}}``
with powers in mW. Its ``avg`` field is a running mean of successive readings, not a time
average, so it is ignored: the instantaneous ``power`` values are integrated (trapezoid) at the
times they arrive. jtop's service refreshes at its interval (use >= 0.5 s), so windows must
span several refreshes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from profiling.meters.base import MeterError
from profiling.meters.polling import PollingMeter

MIN_INTERVAL_S = 0.5


def _default_factory(interval: float) -> Any:
    try:
        from jtop import jtop
    except ImportError as exc:
        raise MeterError("jtop is not installed (pip install jetson-stats; needs its service)") from exc
    return jtop(interval=interval)


class JtopMeter(PollingMeter):
    """Polls ``jetson.power`` each time jtop reports fresh data (``jetson.ok()``)."""

    name = "jtop"

    def __init__(
        self,
        *,
        interval_s: float = MIN_INTERVAL_S,
        jtop_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s < MIN_INTERVAL_S:
            raise ValueError(f"jtop interval_s must be >= {MIN_INTERVAL_S} s, got {interval_s}")
        super().__init__(interval_s=interval_s, clock=clock)
        self.min_window_s = max(2.0, 4 * interval_s)
        self._factory = jtop_factory or _default_factory
        self._stack: ExitStack | None = None
        self._jetson: Any = None

    def _connect(self) -> Any:
        if self._jetson is None:
            stack = ExitStack()
            try:
                self._jetson = stack.enter_context(self._factory(interval=self.interval_s))
            except MeterError:
                raise
            except Exception as exc:  # jtop raises JtopException, OSError, ... when its service is down
                raise MeterError(f"cannot connect to jtop: {exc}") from exc
            self._stack = stack
            if not self._jetson.ok():
                self.close()
                raise MeterError("jtop connected but delivers no data (jetson.ok() is False)")
        return self._jetson

    def _sample(self) -> tuple[float, dict[str, float]]:
        power = self._connect().power
        try:
            total_w = float(power["tot"]["power"]) / 1e3
            rails_w = {name: float(rail["power"]) / 1e3 for name, rail in power.get("rail", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise MeterError(f"jtop reports no power readings on this board ({exc!r} in {power!r})") from exc
        return total_w, rails_w

    def _wait_next(self) -> bool:
        return self._jetson.ok()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._jetson = None, None
