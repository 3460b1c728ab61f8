"""Jetson board energy from ``jtop`` (jetson-stats 4.x) power readings, integrated here.

``jetson.power`` is ``{"rail": {name: {"volt", "curr", "power", "avg", "type", ...}}, "tot": {...}}``
with powers in mW. INA3221 channels have ``type`` ``"I2C"``; jetson-stats also lists power-supply
entries (``/sys/class/power_supply``, ``type`` ``"SYSTEM"``, e.g. the USB-C PD port
``USBC000:001`` on AGX Orin), and when the board has no input rail its ``tot`` sums those too. So
``tot`` is used only when it *is* the input rail (it then carries ``"name": "VDD_IN"`` or
``"POM_5V_IN"``); the board total is otherwise the project's own rule over the INA3221 rails
(:func:`~profiling.meters.jetson.total_power_w`). ``avg`` is a running mean of successive
readings, not a time average, and is ignored: the instantaneous ``power`` values are integrated
(trapezoid) at the times they arrive.

``jetson.ok()`` blocks until the service publishes fresh data and returns False, without
raising, when none arrives within three intervals: inside a window that is a failure, never the
end of the window. The service keeps the interval of its first client, so the real interval is
read back from ``jetson.interval`` and sets the shortest window (``MIN_SAMPLES`` refreshes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from profiling.meters.base import EnergyMeter, MeterError, _Measured
from profiling.meters.integrate import trapezoid_j
from profiling.meters.jetson import TOTAL_RAILS, total_power_w

MIN_INTERVAL_S = 0.5
MIN_WINDOW_S = 2.0
MIN_SAMPLES = 10  # refreshes per window, at the service's real interval
OK_TIMEOUT_FACTOR = 3  # jtop's ok() gives up after this many intervals without data
INA3221_TYPES = ("I2C", "INA3221")


def _default_factory(interval: float) -> Any:
    try:
        from jtop import jtop
    except ImportError as exc:
        raise MeterError(
            "jtop is not installed (pip install jetson-stats, the same version as the board's jtop service; AGPL-3.0)"
        ) from exc
    return jtop(interval=interval)


def min_window_for(interval_s: float) -> float:
    """Shortest window worth measuring at a refresh interval: ``MIN_SAMPLES`` refreshes, >= 2 s."""
    return max(MIN_WINDOW_S, MIN_SAMPLES * interval_s)


def board_power_w(power: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(board total W, INA3221 rail W) from one ``jetson.power`` dict; power-supply entries are left out."""
    rails_w = {
        name: float(entry["power"]) / 1e3
        for name, entry in power.get("rail", {}).items()
        if entry.get("type", "I2C") in INA3221_TYPES
    }
    total = power.get("tot", {})
    if total.get("name") in TOTAL_RAILS:  # jtop moved the input rail out of "rail"
        rails_w[total["name"]] = float(total["power"]) / 1e3
    if not rails_w:
        raise KeyError("no INA3221 rails")
    return total_power_w(rails_w), rails_w


class JtopMeter(EnergyMeter):
    """Samples ``jetson.power`` at the window's start (a fresh refresh), at every refresh, and at its end."""

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
        super().__init__(clock=clock)
        self.requested_interval_s = interval_s
        self.interval_s = interval_s  # the service's real interval once connected
        self.min_window_s = min_window_for(interval_s)
        self._factory = jtop_factory or _default_factory
        self._stack: ExitStack | None = None
        self._jetson: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._times: list[float] = []
        self._samples: list[tuple[float, dict[str, float]]] = []
        self._error: str | None = None

    def _connect(self) -> Any:
        if self._jetson is None:
            stack = ExitStack()
            try:
                self._jetson = stack.enter_context(self._factory(interval=self.requested_interval_s))
            except MeterError:
                raise
            except Exception as exc:  # jtop raises JtopException, OSError, ... when its service is down
                raise MeterError(
                    f"cannot connect to jtop: {exc} (is jtop.service running, and is the client the "
                    "same jetson-stats version as the service?)"
                ) from exc
            self._stack = stack
            self.interval_s = float(getattr(self._jetson, "interval", self.requested_interval_s))
            self.min_window_s = min_window_for(self.interval_s)
            try:
                self._refresh()
            except MeterError:
                self.close()
                raise
        return self._jetson

    def _refresh(self) -> None:
        """Wait for the next refresh; ``ok()`` False (no data for 3 intervals) is an error."""
        if not self._jetson.ok():
            raise MeterError(
                f"jtop delivered no data for {OK_TIMEOUT_FACTOR * self.interval_s:g} s (jetson.ok() returned "
                "False): the jtop service stalled or stopped"
            )

    def _sample(self) -> tuple[float, dict[str, float]]:
        power = self._connect().power
        try:
            return board_power_w(power)
        except (KeyError, TypeError, ValueError) as exc:
            raise MeterError(f"jtop reports no power readings on this board ({exc!r} in {power!r})") from exc

    def _record(self, t: float, sample: tuple[float, dict[str, float]]) -> None:
        with self._lock:
            self._times.append(t)
            self._samples.append(sample)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                fresh = self._jetson.ok()
                if self._stop.is_set():
                    return
                if not fresh:
                    gap_s = OK_TIMEOUT_FACTOR * self.interval_s
                    self._error = f"no data for {gap_s:g} s inside the window (jetson.ok() returned False)"
                    return
                self._record(self._clock(), self._sample())
        except BaseException as exc:  # reported by end(): the window must not look valid
            self._error = str(exc) or type(exc).__name__

    def _probe(self) -> None:
        self._sample()

    def _begin(self) -> None:
        self._connect()
        self._times, self._samples, self._error = [], [], None
        self._refresh()  # the first sample is a fresh reading taken at the window's start
        self._record(self._clock(), self._sample())
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="jtop-poller", daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # returns at the next refresh, or after ok()'s timeout
            self._thread = None

    def _end(self) -> _Measured:
        end_t, last = self._clock(), self._sample()  # the latest refresh, held to the window's end
        self._halt()
        if self._error is not None:
            raise MeterError(f"jtop: {self._error}; the window is void")
        with self._lock:
            kept = [(t, s) for t, s in zip(self._times, self._samples, strict=True) if t <= end_t]
        kept.append((end_t, last))
        times = [t for t, _ in kept]
        energy_j = trapezoid_j(times, [total for _, (total, _) in kept])
        names = sorted(set().union(*(rails for _, (_, rails) in kept)))
        per_domain_j = {n: trapezoid_j(times, [rails.get(n, 0.0) for _, (_, rails) in kept]) for n in names}
        return _Measured(energy_j, end_t - times[0], per_domain_j)

    def _abort(self) -> None:
        self._halt()

    def close(self) -> None:
        self._halt()
        if self._stack is not None:
            self._stack.close()
        self._stack, self._jetson = None, None
