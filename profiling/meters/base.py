"""The one interface every energy meter implements: probe, begin/end window, context manager."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class MeterError(RuntimeError):
    """A meter cannot measure; the message says why and, where possible, how to fix it."""


@dataclass(frozen=True)
class Availability:
    """Whether a meter's real query works here, and why not if it does not."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class EnergyReading:
    """Energy measured over one window.

    ``energy_j`` is what the meter's source covers (board input, GPU, CPU packages); ``per_domain_j``
    breaks it down where the source reports domains (rails, packages).
    """

    meter: str
    energy_j: float
    duration_s: float
    start_epoch_s: float
    end_epoch_s: float
    per_domain_j: dict[str, float] = field(default_factory=dict)

    @property
    def power_w(self) -> float:
        """Average power over the window."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan


@dataclass
class EnergyWindow:
    """Handle yielded by :meth:`EnergyMeter.window`; filled when the ``with`` block exits."""

    meter: str
    reading: EnergyReading | None = None

    def _get(self) -> EnergyReading:
        if self.reading is None:
            raise RuntimeError("the energy window is still open: read it after the with-block")
        return self.reading

    @property
    def energy_j(self) -> float:
        return self._get().energy_j

    @property
    def duration_s(self) -> float:
        return self._get().duration_s

    @property
    def power_w(self) -> float:
        return self._get().power_w


@dataclass(frozen=True)
class _Measured:
    """What a meter implementation returns from ``_end``."""

    energy_j: float
    duration_s: float
    per_domain_j: dict[str, float]


class EnergyMeter(ABC):
    """Base class: subclasses implement ``_probe``, ``_begin``, ``_end`` (and ``_abort``/``close``).

    ``min_window_s`` is the shortest window worth measuring with this source (its update step);
    callers loop work until a window is at least that long and divide.
    """

    name: str  # a class attribute; a meter may refine it once it knows its source (nvml-power-avg)
    min_window_s: float = 1.0

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open_since: float | None = None

    def probe(self) -> Availability:
        """Run the real query once; never raises for an unusable meter."""
        try:
            self._probe()
        except MeterError as exc:
            return Availability(False, str(exc))
        return Availability(True)

    def begin(self) -> None:
        """Open a measurement window. Raises :class:`MeterError` if the meter cannot measure."""
        if self._open_since is not None:
            raise RuntimeError(f"{self.name}: begin() called twice without end()")
        self._begin()
        self._open_since = time.time()

    def end(self) -> EnergyReading:
        """Close the window and return its energy. Raises :class:`MeterError` on failure."""
        if self._open_since is None:
            raise RuntimeError(f"{self.name}: end() called without begin()")
        start_epoch_s, self._open_since = self._open_since, None
        measured = self._end()
        return EnergyReading(
            meter=self.name,
            energy_j=measured.energy_j,
            duration_s=measured.duration_s,
            start_epoch_s=start_epoch_s,
            end_epoch_s=time.time(),
            per_domain_j=measured.per_domain_j,
        )

    def abort(self) -> None:
        """Drop an open window without reading it (used when the measured work raised)."""
        if self._open_since is not None:
            self._open_since = None
            self._abort()

    @contextmanager
    def window(self) -> Iterator[EnergyWindow]:
        """``with meter.window() as w: ...`` then ``w.energy_j``."""
        handle = EnergyWindow(meter=self.name)
        self.begin()
        try:
            yield handle
        except BaseException:
            self.abort()
            raise
        handle.reading = self.end()

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release the meter's resources (library handles, threads, connections)."""

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _probe(self) -> None:
        """Perform the real query; raise :class:`MeterError` with the reason if it fails."""

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _end(self) -> _Measured: ...

    def _abort(self) -> None:  # noqa: B027 - optional hook, counters hold nothing to undo
        """Undo ``_begin`` without measuring; counters need nothing."""
