"""The MDP solver: per-group widths and block removal maximising kept importance under a latency budget.

A mixed-integer linear program solved exactly by HiGHS (``scipy.optimize.milp``):

* ``x[g,k]`` (binary): group ``g`` keeps ``widths[g][k]`` channels; ``sum_k x[g,k] = 1``.
* ``r[b]`` (binary): block ``b`` is kept; each group held by the block has a width-0 choice with
  ``x[g,0] = 1 - r[b]``, so a removed block is exactly "zero inner width".
* ``z[p,i,j]`` (continuous in [0, 1]) for every pair ``p`` of groups some layer reads and writes:
  ``sum_j z[p,i,j] = x[a,i]`` and ``sum_i z[p,i,j] = x[c,j]``; with one-hot ``x`` this forces
  ``z[p,i,j] = x[a,i] x[c,j]``, which makes a layer's table latency linear in the variables.
* objective: ``max sum x[g,k] value[g,k] + sum r[b] value[b]`` (importance kept, normalised to 1).
* constraint: ``scale x (sum of layer latencies) + offset_ms <= budget_ms`` with the table's
  selected latency model (:attr:`LatencyTable.selected`, any of which is linear in the entries).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.plan import PrunePlan


@dataclass(frozen=True)
class SolverConfig:
    time_limit_s: float = 60.0
    mip_rel_gap: float = 1e-4
    remove_blocks: bool = True


@dataclass(frozen=True)
class MdpProblem:
    """Everything the MILP needs; ``choices[g]`` starts with 0 for groups of removable blocks."""

    choices: dict[str, tuple[int, ...]]
    values: dict[str, tuple[float, ...]]  # kept importance per choice
    block_groups: dict[str, tuple[str, ...]]
    block_values: dict[str, float]
    table: LatencyTable
    budget_ms: float


@dataclass(frozen=True)
class Solution:
    plan: PrunePlan
    predicted_ms: float
    budget_ms: float
    objective: float  # kept importance, 1.0 = everything
    solve_s: float
    mip_gap: float
    status: str
    num_variables: int
    num_constraints: int

    def to_dict(self) -> dict[str, object]:
        return {
            **self.plan.to_dict(),
            "predicted_ms": self.predicted_ms,
            "budget_ms": self.budget_ms,
            "objective": self.objective,
            "solve_s": self.solve_s,
            "mip_gap": self.mip_gap,
            "status": self.status,
            "num_variables": self.num_variables,
            "num_constraints": self.num_constraints,
        }


class _Builder:
    """Variables, sparse rows and the latency row of the MILP."""

    def __init__(self) -> None:
        self.names: list[tuple[str, ...]] = []
        self.integral: list[int] = []
        self.rows: list[tuple[list[int], list[float], float, float]] = []

    def var(self, name: tuple[str, ...], *, integral: bool) -> int:
        self.names.append(name)
        self.integral.append(int(integral))
        return len(self.names) - 1

    def row(self, cols: list[int], coefs: list[float], lo: float, hi: float) -> None:
        self.rows.append((cols, coefs, lo, hi))

    def matrix(self) -> tuple[coo_array, np.ndarray, np.ndarray]:
        r, c, v = [], [], []
        for i, (cols, coefs, _, _) in enumerate(self.rows):
            r += [i] * len(cols)
            c += cols
            v += coefs
        shape = (len(self.rows), len(self.names))
        lo = np.array([row[2] for row in self.rows])
        hi = np.array([row[3] for row in self.rows])
        return coo_array((v, (r, c)), shape=shape), lo, hi


def _pair_costs(problem: MdpProblem) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray], float]:
    """Layer latencies summed per single group (vectors over its choices) and per group pair (matrices)."""
    single: dict[str, np.ndarray] = defaultdict(lambda: 0.0)  # type: ignore[arg-type]
    pairs: dict[tuple[str, str], np.ndarray] = {}
    constant = 0.0
    for layer in problem.table.layers.values():
        axes = tuple(sorted(layer.axes))
        if not axes:
            constant += layer.lookup({})
        elif len(axes) == 1:
            (a,) = axes
            single[a] = single[a] + np.array([layer.lookup({a: w}) for w in problem.choices[a]])
        else:
            a, c = axes
            cost = np.array([[layer.lookup({a: wa, c: wc}) for wc in problem.choices[c]] for wa in problem.choices[a]])
            pairs[(a, c)] = pairs[(a, c)] + cost if (a, c) in pairs else cost
    return dict(single), pairs, constant


@dataclass
class _Program:
    builder: _Builder
    x: dict[str, list[int]]
    r: dict[str, int]
    latency_cols: list[int]
    latency_coefs: list[float]
    constant_ms: float  # table entries that no choice changes


def _program(problem: MdpProblem) -> _Program:
    """Choice, block and pair variables with their linking rows (no objective, no budget row yet)."""
    single, pairs, constant = _pair_costs(problem)
    b = _Builder()
    x = {g: [b.var(("x", g, str(w)), integral=True) for w in ws] for g, ws in problem.choices.items()}
    r = {name: b.var(("r", name), integral=True) for name in problem.block_groups}
    cols: list[int] = []
    coefs: list[float] = []
    for g, xs in x.items():
        b.row(xs, [1.0] * len(xs), 1.0, 1.0)
        if g in single:
            cols += xs
            coefs += list(single[g])
    for name, groups in problem.block_groups.items():
        for g in groups:
            if problem.choices[g][0] != 0:
                raise ValueError(f"group {g} of block {name} needs a width-0 choice first")
            b.row([x[g][0], r[name]], [1.0, 1.0], 1.0, 1.0)
    for (a, c), cost in pairs.items():
        n_a, n_c = cost.shape
        z = [[b.var(("z", a, c, str(i), str(j)), integral=False) for j in range(n_c)] for i in range(n_a)]
        for i in range(n_a):
            b.row([*z[i], x[a][i]], [1.0] * n_c + [-1.0], 0.0, 0.0)
        for j in range(n_c):
            b.row([z[i][j] for i in range(n_a)] + [x[c][j]], [1.0] * n_a + [-1.0], 0.0, 0.0)
        cols += [v for row in z for v in row]
        coefs += list(cost.ravel())
    return _Program(b, x, r, cols, coefs, constant)


def _run(program: _Program, objective: np.ndarray, config: SolverConfig):
    matrix, lo, hi = program.builder.matrix()
    return milp(
        objective,
        integrality=np.array(program.builder.integral),
        bounds=Bounds(0.0, 1.0),
        constraints=LinearConstraint(matrix, lo, hi),
        options={"time_limit": config.time_limit_s, "mip_rel_gap": config.mip_rel_gap, "disp": False},
    )


def _plan(problem: MdpProblem, program: _Program, values: np.ndarray) -> PrunePlan:
    widths = {g: problem.choices[g][int(np.argmax(values[xs]))] for g, xs in program.x.items()}
    return PrunePlan(widths, tuple(name for name, col in program.r.items() if values[col] < 0.5))


def solve(problem: MdpProblem, config: SolverConfig = SolverConfig()) -> Solution:
    """Solve the MILP; raises ``ConfigError`` when no structure on the grid meets the budget."""
    started = time.perf_counter()
    table = problem.table
    program = _program(problem)
    b = program.builder
    model = table.selected  # the same a x entries + b that table.predict_ms uses
    limit = (problem.budget_ms - model.offset_ms) / model.scale - program.constant_ms
    b.row(program.latency_cols, program.latency_coefs, -np.inf, limit)
    objective = np.zeros(len(b.names))
    for g, xs in program.x.items():
        objective[xs] = problem.values[g]
    for name, col in program.r.items():
        objective[col] = problem.block_values[name]
    result = _run(program, -objective, config)
    solve_s = time.perf_counter() - started
    if result.x is None:
        if result.status == 2:
            floor = minimum_latency_ms(problem, config)
            raise ConfigError(
                f"latency budget {problem.budget_ms:.3f} ms is unreachable: the fastest structure on this width "
                f"grid is predicted at {floor:.3f} ms (dense {table.dense_latency_ms:.3f} ms)"
            )
        raise ConfigError(f"the MILP solver stopped without a solution: {result.message}")
    plan = _plan(problem, program, result.x)
    return Solution(
        plan=plan,
        predicted_ms=table.predict_ms(plan),
        budget_ms=problem.budget_ms,
        objective=float(-result.fun),
        solve_s=solve_s,
        mip_gap=float(getattr(result, "mip_gap", 0.0) or 0.0),
        status="optimal" if result.status == 0 else f"stopped ({result.message})",
        num_variables=len(b.names),
        num_constraints=len(b.rows),
    )


def minimum_latency_ms(problem: MdpProblem, config: SolverConfig = SolverConfig()) -> float:
    """Predicted latency of the fastest structure on the grid (its own small MILP: entries need not be monotone)."""
    program = _program(problem)
    objective = np.zeros(len(program.builder.names))
    np.add.at(objective, program.latency_cols, program.latency_coefs)
    result = _run(program, objective, config)
    return problem.table.predict_ms(_plan(problem, program, result.x))
