"""Parameter spaces: what the optimizer may vary, as a grid or for a sampler.

A space maps parameter names to dimensions:

* :class:`Choice` — explicit values (a declared ``grid``, a ``choices`` list, ``True/False``);
* :class:`IntRange` / :class:`FloatRange` — inclusive bounds, with an optional grid step;
* :class:`Simplex` — a group of non-negative weights that sum to ``total`` (the ensemble's six
  weights), sampled from a Dirichlet(1, ..., 1) or gridded on a normalized lattice.

Parameters the space does not name keep the values of ``base`` (the config's current ones).
:meth:`Space.from_params` builds the default space from the declaration (every parameter with a
``grid``), and user ranges from JSON: a list is explicit values, an object
``{"min": 5, "max": 20, "step": 1}`` a range. A parameter declared with ``choices`` and no
``grid`` (Bollinger's ``exit``) is left out of the default space and searched only when named,
as a list of its choices (``{"exit": ["middle", "opposite"]}``).

Pure: numpy and the standard library.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from strategies.params import ParamError, Params


@dataclasses.dataclass(frozen=True)
class Choice:
    values: tuple

    def grid(self) -> list:
        return list(self.values)

    def count(self) -> int:
        return len(self.values)

    def sample(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]


@dataclasses.dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1

    def grid(self) -> list:
        return list(range(self.low, self.high + 1, self.step))

    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def sample(self, rng: np.random.Generator):
        return self.low + self.step * int(rng.integers((self.high - self.low) // self.step + 1))


@dataclasses.dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    step: float | None = None

    def grid(self) -> list:
        if self.step is None:
            raise ParamError(
                f"a float range {self.low}..{self.high} needs a step to be gridded"
            )
        return [round(self.low + i * self.step, 12) for i in range(self.count())]

    def count(self) -> int:
        if self.step is None:
            raise ParamError(
                f"a float range {self.low}..{self.high} needs a step to be gridded"
            )
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def sample(self, rng: np.random.Generator):
        if self.step is not None:  # a grid point, drawn without building the grid
            return round(self.low + int(rng.integers(self.count())) * self.step, 12)
        return float(self.low + (self.high - self.low) * rng.random())


@dataclasses.dataclass(frozen=True)
class Simplex:
    """Weights ``names`` that are non-negative and sum to ``total``."""

    names: tuple[str, ...]
    total: float = 1.0
    #: Lattice divisions for the grid (weights are multiples of total / divisions).
    divisions: int = 4

    def grid(self) -> list[tuple[float, ...]]:
        k = len(self.names)
        points = []
        for combo in itertools.combinations_with_replacement(range(k), self.divisions):
            counts = [0] * k
            for i in combo:
                counts[i] += 1
            points.append(tuple(self.total * c / self.divisions for c in counts))
        return sorted(set(points), reverse=True)

    def count(self) -> int:
        return len(self.grid())

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        weights = rng.dirichlet(np.ones(len(self.names))) * self.total
        return tuple(float(w) for w in weights)


Dimension = Choice | IntRange | FloatRange | Simplex


@dataclasses.dataclass(frozen=True)
class Space:
    """Dimensions by name (a Simplex under any key, its weights named inside it)."""

    params_cls: type[Params]
    dims: Mapping[str, Dimension]
    base: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    # ---------------------------------------------------------------- building

    @classmethod
    def from_params(
        cls,
        params_cls: type[Params],
        ranges: Mapping[str, Any] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> Space:
        """The declared grid of every parameter that has one, overridden by ``ranges``."""
        rows = {row["name"]: row for row in params_cls.describe()}
        dims: dict[str, Dimension] = {}
        if ranges is None:
            for name, row in rows.items():
                if row["grid"]:
                    dims[name] = Choice(tuple(row["grid"]))
        else:
            for name, spec in ranges.items():
                if name not in rows:
                    raise ParamError(
                        f"unknown parameter {name} for {params_cls.label}; it takes: "
                        f"{', '.join(rows)}"
                    )
                dims[name] = _dimension(name, rows[name], spec)
        return cls(params_cls, dims, dict(base or {}))

    # ---------------------------------------------------------------- use

    def size(self) -> float:
        """Number of grid points (inf when a dimension cannot be gridded)."""
        total = 1.0
        for dim in self.dims.values():
            try:
                total *= dim.count()  # counted, not built: a range may be huge
            except ParamError:
                return math.inf
        return total

    def _merge(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(self.base)
        for name, value in values.items():
            dim = self.dims.get(name)
            if isinstance(dim, Simplex):
                out.update(zip(dim.names, value))
            else:
                out[name] = value
        return out

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point as a parameter dict, in a fixed order (declaration order)."""
        names = list(self.dims)
        axes = [self.dims[name].grid() for name in names]
        return [self._merge(dict(zip(names, combo))) for combo in itertools.product(*axes)]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return self._merge({name: dim.sample(rng) for name, dim in self.dims.items()})

    def corner(self) -> dict[str, Any]:
        """Every numeric dimension at its largest value: a safe guess for the longest lookback."""
        values = {}
        for name, dim in self.dims.items():
            if isinstance(dim, (IntRange, FloatRange)):
                values[name] = dim.high
            elif isinstance(dim, Choice) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in dim.values
            ):
                values[name] = max(dim.values)
            elif isinstance(dim, Simplex):
                values[name] = tuple(dim.total / len(dim.names) for _ in dim.names)
        return self._merge(values)

    def to_json(self) -> dict[str, Any]:
        out = {}
        for name, dim in self.dims.items():
            kind = type(dim).__name__.lower()
            out[name] = {"kind": kind, **{
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(dim).items()
            }}
        return out


def _dimension(name: str, row: dict, spec: Any) -> Dimension:
    kind = row["type"]
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ParamError(f"{name}: give at least one value to try")
        declared = row.get("choices")
        bad = [v for v in spec if declared and v not in declared]
        if bad:
            raise ParamError(
                f"{name} must be one of {', '.join(map(str, declared))}; got {bad[0]!r}"
            )
        return Choice(tuple(spec))
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"min", "max", "step"}
        if unknown or "min" not in spec or "max" not in spec:
            raise ParamError(
                f'{name}: a range is {{"min": low, "max": high, "step": optional}}; got {spec}'
            )
        low, high = spec["min"], spec["max"]
        for value in (low, high, spec.get("step", 1)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value)
            ):
                raise ParamError(f"{name}: min, max and step must be finite numbers; got {spec}")
        if low > high:
            raise ParamError(f"{name}: min {low} is above max {high}")
        if kind == "int":
            step = int(spec.get("step", 1))
            if step < 1:
                raise ParamError(f"{name}: step must be at least 1")
            return IntRange(int(low), int(high), step)
        if kind == "float":
            step = spec.get("step")
            if step is not None and step <= 0:
                raise ParamError(f"{name}: step must be above 0")
            return FloatRange(float(low), float(high), None if step is None else float(step))
        raise ParamError(f"{name} is {kind}; list the values to try instead of a range")
    return Choice((spec,))
