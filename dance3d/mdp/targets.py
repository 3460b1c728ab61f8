"""Latency targets: a fraction of the dense model's latency (``0.5``) or an absolute time (``12ms``)."""

from __future__ import annotations

from dance3d.errors import ConfigError


def budget_ms(target: str | float, dense_latency_ms: float) -> float:
    """The latency budget in ms for ``target``: a fraction in (0, 1] of ``dense_latency_ms``, or ``<value>ms``."""
    text = str(target).strip().lower()
    absolute = text.endswith("ms")
    try:
        value = float(text[:-2] if absolute else text)
    except ValueError:
        raise ConfigError(
            f"target latency {target!r} must be a fraction of the dense latency (e.g. 0.5) or a time in ms (e.g. 12ms)"
        ) from None
    if absolute:
        if not value > 0:
            raise ConfigError(f"target latency must be > 0 ms, got {target!r}")
        return value
    if not 0 < value <= 1:
        raise ConfigError(
            f"target latency {target!r} as a fraction of the dense latency must be in (0, 1]; "
            "write an absolute target with a unit, e.g. 12ms"
        )
    return value * dense_latency_ms
