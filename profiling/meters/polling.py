"""Meters that sample instantaneous power in a background thread and integrate it (trapezoid)."""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable

from profiling.meters.base import EnergyMeter, MeterError, _Measured
from profiling.meters.integrate import trapezoid_j


class PollingMeter(EnergyMeter):
    """Samples ``_sample()`` at ``begin``, every ``interval_s`` in a thread, and at ``end``.

    Energy is the trapezoid integral of the samples, so the window is exactly [first, last sample].
    A sampling error inside the window fails the window (never a partial, silently low number).
    """

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self._times: list[float] = []
        self._totals: list[float] = []
        self._domains: list[dict[str, float]] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _sample(self) -> tuple[float, dict[str, float]]:
        """One reading: (total power in W, per-domain power in W). Raise MeterError on failure."""

    def _wait_next(self) -> bool:
        """Block until the next sample is due; False ends the sampling loop."""
        return not self._stop.wait(self.interval_s)

    def _probe(self) -> None:
        self._sample()

    def _record(self) -> None:
        total_w, domains_w = self._sample()
        self._times.append(self._clock())
        self._totals.append(total_w)
        self._domains.append(domains_w)

    def _loop(self) -> None:
        try:
            while self._wait_next() and not self._stop.is_set():
                self._record()
        except BaseException as exc:  # reported by end(): the window must not look valid
            self._error = exc

    def _begin(self) -> None:
        self._times, self._totals, self._domains = [], [], []
        self._error = None
        self._stop.clear()
        self._record()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-poller", daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _end(self) -> _Measured:
        self._halt()
        if self._error is not None:
            raise MeterError(f"{self.name}: sampling failed during the window: {self._error}")
        self._record()
        energy_j = trapezoid_j(self._times, self._totals)
        names = set().union(*self._domains)
        per_domain_j = {
            name: trapezoid_j(self._times, [d.get(name, 0.0) for d in self._domains]) for name in sorted(names)
        }
        return _Measured(energy_j, self._times[-1] - self._times[0], per_domain_j)

    def _abort(self) -> None:
        self._halt()
