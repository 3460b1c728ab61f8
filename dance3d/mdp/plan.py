"""A pruning plan: the width of every channel group and the removed blocks, plus the width grids."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dance3d.errors import ConfigError
from dance3d.mdp.graph import Structure


@dataclass(frozen=True)
class PrunePlan:
    """``widths[g]`` channels kept in group ``g`` (0 for the groups of removed blocks)."""

    widths: dict[str, int]
    removed_blocks: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"widths": dict(self.widths), "removed_blocks": list(self.removed_blocks)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PrunePlan:
        return cls({str(k): int(v) for k, v in dict(data["widths"]).items()}, tuple(data["removed_blocks"]))

    def check(self, structure: Structure) -> None:
        """Clear errors for plans that do not fit ``structure``."""
        if set(self.widths) != set(structure.groups):
            missing, extra = set(structure.groups) - set(self.widths), set(self.widths) - set(structure.groups)
            raise ConfigError(
                f"plan does not match the model: missing groups {sorted(missing)}, unknown {sorted(extra)}"
            )
        unknown = set(self.removed_blocks) - set(structure.blocks)
        if unknown:
            raise ConfigError(f"plan removes unknown blocks {sorted(unknown)}")
        removed_groups = {g for b in self.removed_blocks for g in structure.blocks[b].groups}
        for g, w in self.widths.items():
            full = structure.groups[g].width
            if g in removed_groups and w != 0:
                raise ConfigError(f"group {g} belongs to a removed block but keeps {w} channels")
            if g not in removed_groups and not 1 <= w <= full:
                raise ConfigError(f"group {g}: width {w} outside 1..{full}")


def full_plan(structure: Structure) -> PrunePlan:
    """Everything kept."""
    return PrunePlan(structure.full_widths())


def width_grid(width: int, *, step: int, max_points: int) -> tuple[int, ...]:
    """Multiples of ``step`` up to ``width`` (coarsened to at most ``max_points``), always ending at ``width``."""
    if step < 1 or max_points < 1:
        raise ConfigError(f"width step and max points must be >= 1, got {step} and {max_points}")
    count = width // step
    if count > max_points:
        step *= math.ceil(count / max_points)
    values = list(range(step, width, step)) + [width]
    return tuple(values[-max_points:]) if len(values) > max_points else tuple(values)
