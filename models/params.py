"""Declared model parameters: each model class lists its constructor's parameters with a type
and a valid range (``RecommenderBase.PARAMS``), and one function checks them
(:func:`check_params`), so every path that builds a model (``eval --set``, a config's
``[models.X]``, ``run --set models.X.key=``) refuses a bad value with the same one-line
:class:`ParamError` naming the parameter and its valid range.

A model's memory need is checked the same way before its fit allocates anything
(:func:`check_memory`): the model estimates its arrays from the data's shape, and a fit that
cannot fit in the memory this machine has available is refused, saying how much it needs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

__all__ = ["Choice", "Flag", "ListOf", "Num", "Param", "ParamError", "Table", "Text",
           "TrainingDiverged", "Whole", "available_bytes", "check_memory", "check_params", "gib"]


class ParamError(ValueError):
    """A model parameter is unusable; the message names it, its value and its valid range."""

    def __init__(self, owner: str, param: str, value, expected: str, what: str = "bad parameter"):
        self.owner, self.param, self.value, self.expected = owner, param, value, expected
        super().__init__(f"{owner}: {what} {param}={value!r}: {expected}")


BAD = object()  # what :meth:`Param.coerce` returns for a value it does not accept


@dataclass(frozen=True)
class Param:
    """A parameter's type and range. Subclasses implement :meth:`coerce` (the value, converted,
    or :data:`BAD`) and :meth:`describe` (the valid range, in words)."""

    none: bool = False  # None is a valid value (meaning "off" or "derived")

    def check(self, owner: str, name: str, value):
        if value is None and self.none:
            return None
        out = self.coerce(value)
        if out is BAD:
            raise ParamError(owner, name, value, "expected " + self.describe()
                             + (" or None" if self.none else ""))
        return out

    def coerce(self, value):  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


def _real(value) -> float | None:
    """``value`` as a finite float (not a bool or a string), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


@dataclass(frozen=True)
class Num(Param):
    """A finite number in a range; ``open_low``/``open_high`` exclude the ends."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def _inside(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.open_low and x == self.low)):
            return False
        return self.high is None or not (x > self.high or (self.open_high and x == self.high))

    def coerce(self, value):
        x = _real(value)
        return x if x is not None and self._inside(x) else BAD

    def _range(self) -> str:
        lo = None if self.low is None else f"{self.low:g}"
        hi = None if self.high is None else f"{self.high:g}"
        if lo is not None and hi is not None:
            return f" in {'(' if self.open_low else '['}{lo}, {hi}{')' if self.open_high else ']'}"
        if lo is not None:
            return f" {'>' if self.open_low else '>='} {lo}"
        return "" if hi is None else f" {'<' if self.open_high else '<='} {hi}"

    def describe(self) -> str:
        return "a finite number" + self._range()


@dataclass(frozen=True)
class Whole(Num):
    """An integer in a range (an integral float such as ``1e8`` counts as one)."""

    def coerce(self, value):
        x = _real(value)
        return int(x) if x is not None and x == int(x) and self._inside(x) else BAD

    def describe(self) -> str:
        return "an integer" + self._range()


@dataclass(frozen=True)
class Flag(Param):
    """``true`` or ``false`` (not a string, not a number)."""

    def coerce(self, value):
        return bool(value) if isinstance(value, (bool, np.bool_)) else BAD

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice(Param):
    """One of ``values``."""

    values: tuple = ()

    def coerce(self, value):
        ok = isinstance(value, (str, type(None))) and value in self.values
        return value if ok else BAD

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Text(Param):
    """A non-empty string."""

    def coerce(self, value):
        return value if isinstance(value, str) and value.strip() else BAD

    def describe(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class Table(Param):
    """A table (dict) of settings."""

    def coerce(self, value):
        return dict(value) if isinstance(value, dict) else BAD

    def describe(self) -> str:
        return "a table of settings"


@dataclass(frozen=True)
class ListOf(Param):
    """A list (possibly empty) whose every element ``item`` accepts: ``ListOf(Whole(low=1))``
    for layer widths, ``ListOf(Text())`` for feature names."""

    item: Param = Text()

    def coerce(self, value):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            return BAD
        out = [self.item.coerce(v) for v in value]
        return BAD if any(v is BAD for v in out) else out

    def describe(self) -> str:
        return f"a list, each {self.item.describe()}"


def check_params(owner: str, specs: dict, values: dict) -> dict:
    """The values of the declared parameters ``specs`` found in ``values``, checked and
    converted (``dim=64.0`` -> 64); raises :class:`ParamError` at the first bad one."""
    return {name: spec.check(owner, name, values[name])
            for name, spec in specs.items() if name in values}


# ---------------------------------------------------------------------------------- memory
def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB, as ``'3.2 GiB'`` (or MiB below one GiB)."""
    if n_bytes < 2**30:
        return f"{n_bytes / 2**20:.0f} MiB"
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes < 2**40 else f"{n_bytes / 2**40:.3g} TiB"


def _cgroup_free() -> float:
    """Bytes left under this process's cgroup (v2) memory limit, inf when it has none."""
    try:
        base = Path("/sys/fs/cgroup")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return math.inf
        return float(limit) - float((base / "memory.current").read_text())
    except (OSError, ValueError):
        return math.inf


def available_bytes() -> float:
    """Memory this process can still take: the system's available memory, or what is left
    under a cgroup limit when that is less."""
    return min(float(psutil.virtual_memory().available), _cgroup_free())


def check_memory(owner: str, parts: dict, params: dict, available: float | None = None) -> float:
    """Refuse a fit whose estimated arrays ``parts`` (name -> bytes) exceed the available memory
    (``available``: :func:`available_bytes` when None); ``params`` are the parameters that set
    the size, named in the error. Returns the estimate in bytes."""
    need = float(sum(parts.values()))
    have = available_bytes() if available is None else float(available)
    if need > have:
        first = next(iter(params))
        biggest = [kv for kv in sorted(parts.items(), key=lambda kv: -kv[1])[:3]
                   if kv[1] >= 0.01 * need]
        raise ParamError(owner, first, params[first],
                         f"the fit needs about {gib(need)} "
                         f"({', '.join(f'{k} {gib(v)}' for k, v in biggest)}) with "
                         f"{', '.join(f'{k}={v!r}' for k, v in params.items())}, but "
                         f"{gib(have)} is available; lower " + " or ".join(params))
    return need


class TrainingDiverged(ParamError):
    """A fit's training loss became NaN or infinite (a learning rate too high for the data)."""

    def __init__(self, owner: str, epoch: int, loss: float, params: dict):
        """``params``: the step sizes in force; the largest is named as the one to lower."""
        self.epoch, self.loss = epoch, loss
        (first, value), *rest = sorted(params.items(), key=lambda kv: -kv[1])
        also = f" ({', '.join(f'{k}={v!r}' for k, v in rest)})" if rest else ""
        ValueError.__init__(self, f"{owner}: training diverged ({'NaN' if loss != loss else loss} "
                            f"loss) at epoch {epoch} with {first}={value!r}{also}; lower {first}")
        self.owner, self.param, self.value = owner, first, value
        self.expected = "a value that trains without diverging"
