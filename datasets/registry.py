"""Dataset registry: ``name -> builder``, plus ``twin(A)`` and ``disjoint-union(A, B)`` specs."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import union  # composite builders
from .core import DatasetError, Interactions
from .preprocess import preprocess


@dataclass(frozen=True)
class Loader:
    """One registry entry."""

    name: str
    builder: Callable[..., Interactions]
    description: str
    downloads: bool = False


REGISTRY: dict[str, Loader] = {}


def register(name: str, description: str, downloads: bool = False):
    """Decorator adding ``builder(data_dir=None, **params) -> Interactions`` to the registry."""

    def deco(fn):
        REGISTRY[name] = Loader(name, fn, description, downloads)
        return fn

    return deco


_CALL = re.compile(r"^\s*([\w.-]+)\s*\((.*)\)\s*$")


def _split_args(text: str) -> list[str]:
    depth, cur, out = 0, "", []
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def load(spec: str, data_dir=None, min_rating: float | None = None, min_user: int = 0,
         min_item: int = 0, binary: bool = True, **params) -> Interactions:
    """Load a dataset by registry name or composite spec, then preprocess it.

    Parameters
    ----------
    spec : str
        A registry name (``"ml-100k"``), ``"twin(NAME)"`` or ``"disjoint-union(A, B)"``.
    data_dir : path, optional
        Folder holding an unpacked copy (offline use); see each loader.
    min_rating, min_user, min_item, binary
        See :func:`mfsoftmax.datasets.preprocess.preprocess`; applied to each part.
    **params
        Passed to the builder (e.g. ``n_users`` for ``synthetic``, ``path`` for ``file``).
    """
    opts = dict(min_rating=min_rating, min_user=min_user, min_item=min_item, binary=binary)
    call = _CALL.match(spec)
    if call:
        fn, args = call.group(1), _split_args(call.group(2))
        parts = [load(a, data_dir=data_dir, **opts, **params) for a in args]
        if fn == "twin" and len(parts) == 1:
            return union.twin(parts[0])
        if fn == "disjoint-union" and len(parts) == 2:
            return union.disjoint_union(parts[0], parts[1])
        raise DatasetError(f"dataset spec {spec!r}: expected twin(A) or disjoint-union(A, B)")
    if spec not in REGISTRY:
        raise DatasetError(f"unknown dataset {spec!r}; known: {', '.join(sorted(REGISTRY))}")
    builder = REGISTRY[spec].builder
    accepted = inspect.signature(builder).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            known = ", ".join(k for k in accepted if k != "data_dir") or "none"
            raise DatasetError(f"dataset {spec!r}: unknown parameter(s) {', '.join(unknown)}; "
                               f"it takes: {known}")
    check_param_types(spec, builder, params)
    raw = builder(data_dir=data_dir, **params)
    if binary and min_rating is None:
        _refuse_nonpositive_positives(spec, raw)
    return preprocess(raw, **opts)


def param_type_problem(builder, key: str, value) -> str | None:
    """What ``value`` should be for ``builder``'s parameter ``key`` ("an integer", "a finite
    number", "true or false": the type of its default), or None when it has that type or the
    parameter has no typed default. Ranges are the builder's to check."""
    default = inspect.signature(builder).parameters.get(key)
    default = None if default is None else default.default
    if default is None or default is inspect.Parameter.empty or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(default, float):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value))
        return None if ok else "a finite number"
    return None


def check_param_types(spec: str, builder, params: dict) -> None:
    """Refuse a builder parameter whose value has the wrong type for its default (an integer
    parameter given ``"abc"``, ``1.5`` or ``true``; a number given a string; a flag given
    anything but true/false), naming it (:func:`param_type_problem`).

    Ranges are the builder's to check (it raises :class:`DatasetError` naming the parameter).
    """
    for key, value in params.items():
        want = param_type_problem(builder, key, value)
        if want:
            default = inspect.signature(builder).parameters[key].default
            raise DatasetError(f"dataset {spec!r}: parameter {key}={value}: expected {want} "
                               f"(default {default!r})")


def _refuse_nonpositive_positives(spec: str, data: Interactions) -> None:
    """Binarising without a threshold makes every rating a positive; a rating <= 0 (a dislike on
    a -10..10 scale, an explicit 0) must not silently become one, so the caller has to choose."""
    if data.ratings is None or not data.ratings.size or data.ratings.min() > 0:
        return
    low = data.meta.get("nonpositive_ratings") or {}
    lowest = float(data.ratings.min())
    n = low.get("count", int((data.ratings <= 0).sum()))
    where = str(data.meta.get("source", spec)) + (f", {low['first']}" if "first" in low else "")
    value = low.get("value", lowest)
    raise DatasetError(
        f"{where}: rating {value:g} is <= 0 ({n} such, lowest {lowest:g}) and binarising without "
        "a threshold would make it a positive: pass --min-rating T (min_rating=T; ratings >= T "
        f"are the positives, e.g. --min-rating 1; T <= {lowest:g} keeps them all) or "
        "--no-binarize (binary=False)")
