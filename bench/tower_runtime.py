"""The softmax DNN's query tower for one request, served eager and through the runtimes a
production team would use: TorchScript (``torch.jit.trace``, frozen), ``torch.compile`` (opt in:
its first call compiles for tens of seconds) and ONNX Runtime (only when ``onnxruntime`` is
installed). Every runtime's output is checked against eager (``atol`` 1e-5) before it is timed;
the fastest correct one is ``chosen``.

The runtimes wrap the model's own module (``model.net.query``, read-only) on the tensors that
``SoftmaxDNN._queries_forward`` builds for a one-row query (history bag, user features), so
each times the tower's forward alone: the CSR-to-bag conversion is the ``embed`` step's cost
outside the tower. The compiled runtimes wrap the model's own one-request tower
(``models.softmax.serving.OneQueryTower``: the history bag pooled with ``embedding_bag``) and are accepted
only when equal to eager on several history lengths.

Measured choice: ``torch.compile`` (inductor, CPU) took about two minutes to compile a tiny
tower on the loaded 2-core machine, recompiled per history length and ran slower than eager
(graph breaks around the feature dict), so it is opt-in; TorchScript (trace, freeze,
``optimize_for_inference``) is the runtime of record.

This module times the tower alone, on the tensors of the generic path. The model serves
through the same TorchScript construction itself (``SoftmaxDNN.serve_runtime``, its lean
``recommend_one``), whose end-to-end figure the serving stage records as ``lean_p50_us``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mfsoftmax.models.softmax.bags import bag_inputs
from mfsoftmax.models.softmax.serving import OneQueryTower, trace_tower

TOLERANCE = 1e-5


class _OneQuery:
    """The tower's inputs for one query, as a flat tuple of tensors."""

    def __init__(self, model, user: int, history_items):
        hist = np.sort(np.asarray(history_items, dtype=np.int64))
        self.use_history = bool(model.use_history)
        self.names = [s["name"] for s in model.user_specs] if model.user_specs else []
        args = []
        if self.use_history:
            flat, offsets, weights = bag_inputs(hist, np.zeros(1, np.int64),
                                                np.array([len(hist)]), None, None)
            args += [torch.as_tensor(flat), torch.as_tensor(offsets), torch.as_tensor(weights)]
        feats = model._user_feats(np.array([int(user)], dtype=np.int64)) or {}
        args += [feats[n] for n in self.names]
        self.args = tuple(args)
        self.history_len = len(hist)


def _module(model, names: list[str], use_history: bool):
    """The model's query tower as a module of flat tensor inputs, through its own forward (the
    generic path's computation: eager's reference)."""
    query = model.net.query

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.query = query

        def forward(self, *args):
            bags = tuple(args[:3]) if use_history else None
            rest = args[3:] if use_history else args
            feats = dict(zip(names, rest, strict=True)) if names else None
            return self.query(bags, feats)

    return Tower().eval()


def tower_flops(model, history_len: int) -> int:
    """Multiply-adds x 2 of one query's forward: the history bag's weighted sum and every
    Linear layer of the MLP (feature lookups and activations are not counted)."""
    q = model.net.query
    flops = 2 * history_len * int(model.dim) if model.use_history else 0
    for layer in q.modules():
        if isinstance(layer, torch.nn.Linear):
            flops += 2 * layer.in_features * layer.out_features
    return int(flops)


def build_runtimes(model, user: int, history_items, compile: bool = False, onnx: bool = True):
    """``({name: callable(*args) -> ndarray}, inputs, notes)``: eager plus every runtime that
    builds here; ``notes`` says why a runtime is missing. The TorchScript trace is taken on
    this query's inputs: check it on other queries (:func:`tower_profile` ``checks``)."""
    inputs = _OneQuery(model, user, history_items)
    mod = _module(model, inputs.names, inputs.use_history)
    # the compiled runtimes wrap the model's own one-request tower (``embedding_bag`` pooling)
    serving = OneQueryTower(model.net.query, inputs.names).eval()
    notes: dict[str, str] = {}

    def eager(*a):
        with torch.inference_mode():
            return mod(*a).numpy()

    runtimes = {"eager": eager}
    try:
        traced = trace_tower(serving, inputs.args)

        def torchscript(*a):
            with torch.inference_mode():
                return traced(*a).numpy()

        runtimes["torchscript"] = torchscript
    except Exception as exc:  # noqa: BLE001 - a runtime that does not build is reported
        notes["torchscript"] = f"{type(exc).__name__}: {exc}"[:200]
    if compile:
        try:
            compiled = torch.compile(serving, dynamic=True)

            def compiled_fn(*a):
                with torch.inference_mode():
                    return compiled(*a).numpy()

            compiled_fn(*inputs.args)  # compile now, not in the timed loop
            runtimes["compiled"] = compiled_fn
        except Exception as exc:  # noqa: BLE001
            notes["compiled"] = f"{type(exc).__name__}: {exc}"[:200]
    else:
        notes["compiled"] = "torch.compile not requested (serving.tower_compile)"
    if onnx:
        try:
            import onnxruntime  # noqa: F401  optional: onnxruntime, probed
        except ImportError:
            notes["onnx"] = "onnxruntime not installed"
    return runtimes, inputs, notes


def _median_us(fn, args, n: int) -> float:
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(*args)
        t[i] = time.perf_counter() - t0
    return float(np.median(t) * 1e6)


def tower_profile(model, user: int, history_items, n: int = 200, rounds: int = 5,
                  warmup: int = 20, compile: bool = False, gflops: float | None = None,
                  checks=()) -> dict:
    """``{eager_us, torchscript_us, compiled_us?, chosen, chosen_us, flops,
    flop_floor_us, flops_ratio_at_calibration, max_abs_diff, notes}`` of one query's tower
    forward: each runtime's p50 is the minimum over ``rounds`` interleaved rounds of the
    round's median; only runtimes whose output is within 1e-5 of eager are eligible, on the
    timed query and on every ``(user, history_items)`` of ``checks`` (other history lengths:
    a trace that baked in one query's shapes fails there)."""
    runtimes, inputs, notes = build_runtimes(model, user, history_items, compile=compile)
    others = [_OneQuery(model, u, h).args for u, h in checks]
    diffs, ok = {}, {}
    for name, fn in runtimes.items():
        diffs[name] = 0.0
        for args in (inputs.args, *others):
            ref = runtimes["eager"](*args)
            try:
                out = fn(*args)
                d = float(np.max(np.abs(out - ref))) if out.shape == ref.shape else float("inf")
            except Exception:  # noqa: BLE001 - a runtime that fails on other shapes is not correct
                d = float("inf")
            diffs[name] = max(diffs[name], d)
        if diffs[name] <= TOLERANCE:
            ok[name] = fn
        else:
            notes[name] = (f"output differs from eager by {diffs[name]:.3g}" if np.isfinite(diffs[name])
                           else "fails or changes shape on another history length (a trace "
                                "that baked in the traced query's shapes)")
        for _ in range(warmup):
            fn(*inputs.args)
    per = max(1, n // max(1, rounds))
    medians: dict[str, list[float]] = {name: [] for name in ok}
    for _ in range(max(1, rounds)):
        for name, fn in ok.items():
            medians[name].append(_median_us(fn, inputs.args, per))
    best = {name: min(v) for name, v in medians.items()}
    chosen = min(best, key=best.get)
    flops = tower_flops(model, inputs.history_len)
    out = {f"{name}_us": round(v, 3) for name, v in best.items()}
    out.update({"chosen": chosen, "chosen_us": round(best[chosen], 3), "flops": flops,
                "max_abs_diff": diffs, "history_len": inputs.history_len, "notes": notes})
    if gflops:
        floor_us = flops / (float(gflops) * 1e3)
        out["flop_floor_us"] = round(floor_us, 4)
        out["flops_ratio_at_calibration"] = round(best[chosen] / floor_us, 2) if floor_us else None
    return out
