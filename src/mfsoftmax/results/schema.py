"""The results contract: one validator for ``run``, ``report`` and ``compare``.

The contract is ``docs/results.md`` (prose) and ``results.schema.json`` next to this module (a
JSON Schema, draft 2020-12, shipped as package data; its ``version`` is :data:`SCHEMA_VERSION`).
:func:`validate` checks a results dict against that schema, then the few rules a schema cannot
say (no NaN or infinity anywhere); every message names the key path (``run.threads.blas``,
``models['wals'].quality``, ``sweeps['folding_vs_w0'][2].w0``). Extra keys are always allowed.
The schema also says ranges: share-valued metrics (recall, ndcg, precision, hr, map, mrr,
coverage, leakage at k) in [0, 1], timings >= 0.

Reading old files: ``schema_version`` 1 is the only layout there has been; keys added since
(``run.status``, ``stages.<name>.reason``, ``serving.p50_min_us``, ...) are optional, so every
version-1 file reads. A file of any other version (or without one) is refused with a message
saying so; nothing is converted.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from importlib import resources
from pathlib import Path

from mfsoftmax.results.vocabulary import COMPARED

SCHEMA_VERSION = 1
SCHEMA_FILE = "results.schema.json"

RUN_KEYS = ("id", "started_at", "finished_at", "git_commit", "python", "packages", "machine",
            "threads", "seed", "config", "calibration")
DATASET_KEYS = ("name", "n_users", "n_items", "n_interactions", "protocol", "k")
#: sections every MF and softmax model of a full default run has (``require_all``)
MODEL_SECTIONS = ("quality", "training", "serving", "cold_start", "folding")
#: sweeps a full default run writes (``require_all``)
SWEEPS = ("serving_vs_corpus", "training_vs_size", "folding_vs_w0", "folding_vs_variant")


class ResultsError(ValueError):
    """An unusable results file; the message names the file."""


def read_results(path, error: type[ValueError] = ResultsError) -> dict:
    """Read one results.json (or the one in a run folder) and check its ``schema_version``.

    A missing file, invalid JSON, a non-object or another schema version raises ``error`` (each
    command passes its own error class) with a message naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    check_version(data, str(path), error)
    return data


def check_version(data, label: str, error: type[ValueError] = ResultsError) -> None:
    """``data`` must be a JSON object of this schema version."""
    if not isinstance(data, dict):
        raise error(f"{label}: expected a JSON object at the top level, got {type(data).__name__}")
    if "schema_version" not in data:
        raise error(f"{label}: no schema_version: not a results.json of `mfsoftmax run` "
                    f"(expected schema_version {SCHEMA_VERSION})")
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise error(f"{label}: schema_version {version!r} is not supported (expected "
                    f"{SCHEMA_VERSION}; this mfsoftmax reads only that layout, see docs/results.md)")


def feature_pairs(ablation: list, switch: str = "user_features") -> list[tuple[int, int]]:
    """(with, without) index pairs of ablation rows: the same model and the same other inputs
    (history, user or item features), with and without ``switch`` ("user_features" or
    "item_features"; the rows between which a feature lift is measured)."""
    same = [k for k in ("history", "user_features", "item_features") if k != switch]
    return [(i, j) for i, on in enumerate(ablation) if on.get(switch)
            for j, off in enumerate(ablation)
            if off.get("model") == on.get("model") and not off.get(switch)
            and all(bool(off.get(k)) == bool(on.get(k)) for k in same)]


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema of results.json (package data ``mfsoftmax.src/mfsoftmax/results/results.schema.json``)."""
    text = resources.files("mfsoftmax.results").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator, validators  # lazy: jsonschema (~0.3 s), off --help

    # in-memory results may hold numpy scalars (they are written as plain JSON numbers)
    checker = Draft202012Validator.TYPE_CHECKER.redefine_many({
        "number": lambda _, x: isinstance(x, numbers.Real) and not isinstance(x, bool),
        "integer": lambda _, x: not isinstance(x, bool) and (
            isinstance(x, numbers.Integral) or (isinstance(x, float) and x.is_integer())),
    })
    cls = validators.extend(Draft202012Validator, type_checker=checker)
    return cls(schema())


_TYPE_NAMES = {"object": "an object", "array": "a list", "number": "a number",
               "integer": "an integer", "string": "a string", "boolean": "a boolean", "null": "null"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_@]*\Z")


def _describe(value) -> str:
    """``a string ('fast')``, ``a list``, ``null``, ...: what was found instead."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    return type(value).__name__


def _expected(types) -> str:
    types = [types] if isinstance(types, str) else list(types)
    names = [_TYPE_NAMES.get(t, t) for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


#: top-level objects whose keys are names the writer chose (a model, a sweep, a stage)
NAME_MAPS = ("models", "sweeps", "stages")


def _path(error) -> str:
    """The instance path of ``error`` as a key path (:func:`_key_path`)."""
    return _key_path(list(error.absolute_path))


def _key_path(inst: list) -> str:
    """Keys dotted (``run.threads.blas``), list rows ``[i]``, and in brackets the names a
    writer chose (``models['wals']``, ``sweeps['hashing']``, ``stages['serving']``) and keys
    that are not identifiers (``qps['32']``)."""
    out = ""
    for i, elem in enumerate(inst):
        if isinstance(elem, int):
            out += f"[{elem}]"
        elif (i == 1 and inst[0] in NAME_MAPS) or not _IDENT.match(str(elem)):
            out += f"[{str(elem)!r}]"
        else:
            out += f".{elem}" if out else str(elem)
    return out


def _message(error) -> str:
    where = _path(error)
    at = where or "the top level"
    v = error.validator
    if v == "required":
        missing = re.match(r"'(.*)' is a required property", error.message)
        key = missing.group(1) if missing else error.message
        key = key if _IDENT.match(key) else repr(key)
        return f"{where}.{key} missing" if where else f"{key} missing"
    if v == "type":
        return f"{at} must be {_expected(error.validator_value)}, got {_describe(error.instance)}"
    if v in ("enum", "const"):
        allowed = error.validator_value if v == "enum" else [error.validator_value]
        return f"{at} is {error.instance!r}, expected one of {', '.join(map(repr, allowed))}"
    if v == "minProperties":
        return f"{at} is empty"
    if v == "minItems":
        return f"{at} must have at least {error.validator_value} item(s)"
    if v in ("minimum", "maximum"):
        return f"{at} is {error.instance!r}, out of range: expected {_range(error.schema)}"
    return f"{at}: {error.message}"


def _range(node: dict) -> str:
    """``a value in [0, 1]`` or ``>= 0``: the bounds a schema node sets."""
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        return f"a value in [{low:g}, {high:g}]"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


def _non_finite(value, path=()):
    """Key paths (lists of keys and row indexes) of every NaN or infinity in ``value``: JSON
    has no such numbers (``run`` writes null for a figure it could not compute), so a file
    holding one was not written by ``run`` and its figure cannot be compared."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, (*path, i))
    elif isinstance(value, numbers.Real) and not math.isfinite(value):
        yield list(path), value


def _json_name(value: float) -> str:
    """How JSON writers spell a non-finite float: NaN, Infinity, -Infinity."""
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _in_list_row(error) -> bool:
    return any(isinstance(x, int) for x in error.absolute_path)


def validate(results, source: str | None = None, *, partial: bool = False,
             require_all: bool = False) -> list[str]:
    """Problems of ``results`` against the contract (an empty list when it honours it).

    Each message names the key path, prefixed with ``source`` (the file) when given. The JSON
    Schema is checked first (all its errors, sorted by path), then what a schema cannot say.

    ``partial``: sections and keys may be absent (a reader shows them as "not measured"); what
    is present must still be well-formed, and list rows must keep their identifying keys (a
    cold-start point without ``n_known`` cannot be placed). The report and ``compare`` read
    this way; a finished run must pass without it.

    ``require_all``: also every section of :data:`MODEL_SECTIONS` for the MF and softmax models
    and every sweep of :data:`SWEEPS` (what a full default run writes).
    """
    prefix = f"{source}: " if source else ""
    try:
        check_version(results, "results")
    except ResultsError as exc:
        return [prefix + str(exc).removeprefix("results: ")]
    errors = sorted(_validator().iter_errors(results),
                    key=lambda e: ([str(x) for x in e.absolute_path], e.message))
    if partial:
        errors = [e for e in errors
                  if e.validator not in ("required", "minProperties") or _in_list_row(e)]
    bad = {_key_path(path): v for path, v in _non_finite(results)}
    problems = [f"{where or 'the top level'} is {_json_name(v)}: not a finite number (a figure "
                "that could not be computed is written as null)" for where, v in bad.items()]
    problems += [_message(e) for e in errors if _path(e) not in bad]
    if require_all:
        models = results.get("models")
        for name, m in (models.items() if isinstance(models, dict) else ()):
            if isinstance(m, dict) and m.get("family") in COMPARED:
                problems += [f"models[{name!r}].{sec} missing" for sec in MODEL_SECTIONS
                             if sec not in m]
        sweeps = results.get("sweeps")
        sweeps = sweeps if isinstance(sweeps, dict) else {}
        problems += [f"sweeps[{name!r}] missing" for name in SWEEPS if name not in sweeps]
    return [prefix + p for p in dict.fromkeys(problems)]


def ensure_valid(results, source: str = "results", error: type[ValueError] = ResultsError,
                 **options) -> dict:
    """``results`` when :func:`validate` (with ``options``) finds nothing, else raise ``error``
    with one message naming ``source`` and every problem (the first ten)."""
    problems = validate(results, None, **options)
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise error(f"{source}: " + "; ".join(problems[:10]) + more)
    return results


def check_results(res: dict, require_all: bool = False) -> list[str]:
    """Problems found (empty when the results honour the contract): :func:`validate` of a
    finished run, with ``require_all`` every model section and sweep of a full default run."""
    return validate(res, require_all=require_all)
