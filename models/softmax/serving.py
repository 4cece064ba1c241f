"""The softmax DNN's lean single-request path (``recommend_one``) and how it runs the query
tower (``serve_runtime``: eager, a TorchScript trace, or ``auto``'s choice between them).

- ``recommend_one(user, history_items, k)`` is the lean single-query path: no CSR ``Queries``,
  no batch bag building; the history ids become the tower's bag tensors directly (one bag:
  ``offsets = [0]``, weights ``1 / len``), then ``V @ q`` (+ b) in numpy, history to -inf by
  index, ``argpartition`` and a sort of the ``k`` (``base.topk_one``: ``recommend``'s order).
- ``serve_runtime`` picks how that path runs the query tower: ``eager`` (the module itself,
  under ``torch.inference_mode``), ``torchscript`` (``torch.jit.trace`` of a one-query tower
  that pools the bag with ``embedding_bag``, frozen and ``optimize_for_inference``), or
  ``auto`` (default): TorchScript when it builds, its output equals eager's within
  :data:`SERVE_TOLERANCE` on a few queries (empty, short and long histories, several users)
  and it is not slower *inside the lean path* at the current torch thread count (both runtimes
  timed end to end through ``recommend_one`` on those queries; eager wins only when
  :data:`AUTO_MARGIN` times faster; timed again when the thread count changes), else eager
  with the reason kept (:meth:`LeanServing.serve_info`: ``lean_us`` per runtime,
  ``threads``). Built lazily on the first request after ``fit``/``load`` (the trace bakes the weights in; a refit drops it). Explicit
  ``torchscript`` raises instead of falling back. Measured on ml-100k, one thread: the tower
  2.3-3.7x faster through TorchScript, the lean path's p50 1.5-2.0x lower (docs/models.md).
- Only on CPU; on CUDA ``recommend_one`` takes the generic path.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from ..base import topk_one
from .hparams import SERVE_RUNTIMES
from .precision import autocast
from .towers import QueryTower, hash_ids

#: TorchScript's tower output must be within this of eager's (times max(1, |eager|)).
SERVE_TOLERANCE = 1e-5
#: the same in bf16 (``precision``): the trace's frozen matmul-then-add rounds apart from eager's
#: fused ``addmm`` by about one bf16 step (2^-8 relative)
SERVE_TOLERANCE_BF16 = 2.0 ** -6
#: under ``auto`` eager replaces TorchScript only when this many times faster inside the lean path
AUTO_MARGIN = 1.25
AUTO_ROUNDS = 3  # rounds of the lean-path timing behind ``auto`` (min over rounds of the median)
SERVE_WEIGHT_CACHE = 512  # the lean path keeps the 1/len weight tensors of bags up to this long


class OneQueryTower(torch.nn.Module):
    """The query tower for one request as a module of flat tensors ``(flat, offsets, weights,
    *features)`` (no history: the features alone): the history bag pooled by ``embedding_bag``
    whatever regime the tower was trained in (the dense regime's scatter-then-matmul computes
    the same weighted sum, but a trace of it would bake in the traced bag's length)."""

    def __init__(self, query: QueryTower, names: list[str]):
        super().__init__()
        self.query = query
        self.names = list(names)
        self.use_history = bool(query.use_history)

    def forward(self, *args):
        parts = []
        rest = args
        if self.use_history:
            flat, offsets, weights = args[0], args[1], args[2]
            rest = args[3:]
            rows = hash_ids(flat, self.query.buckets, 7)
            parts.append(torch.nn.functional.embedding_bag(
                rows, self.query.history.weight, offsets, mode="sum", per_sample_weights=weights))
        if self.query.features is not None:
            parts.append(self.query.features(dict(zip(self.names, rest, strict=True))))
        return self.query.mlp(torch.cat(parts, dim=1))


def trace_tower(module: torch.nn.Module, example: tuple):
    """TorchScript of a one-request tower ``module`` (trace on ``example``, freeze,
    ``optimize_for_inference``): the model's serving runtime and ``bench/tower_runtime``'s."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        return torch.jit.optimize_for_inference(traced)


def lean_timings(model, fns: dict, requests: list, rounds: int = AUTO_ROUNDS,
                 reps: int = 5) -> dict:
    """µs of one lean request (``recommend_one`` end to end: tower, ``V @ q``, top-k) with each
    tower runtime of ``fns`` ({name: fn}) over ``requests`` ((user, history) pairs), at the
    current thread count: the minimum over ``rounds`` interleaved rounds of the round's median.
    Module level, so a test can replace it."""
    reqs = [(int(u), model._history_set(h)) for u, h in requests]
    best = {name: float("inf") for name in fns}
    for fn in fns.values():  # warm-up
        for u, h in reqs:
            model._lean(fn, u, h, 10)
    for _ in range(max(1, int(rounds))):
        for name, fn in fns.items():
            t = []
            for _ in range(reps):
                for u, h in reqs:
                    t0 = time.perf_counter()
                    model._lean(fn, u, h, 10)
                    t.append(time.perf_counter() - t0)
            best[name] = min(best[name], float(np.median(t)) * 1e6)
    return {name: round(v, 3) for name, v in best.items()}


def _trace_query_tower(model, example: tuple):
    """TorchScript of :class:`OneQueryTower` traced on ``example`` (one request's tensors).
    Module level, so a test can replace it."""
    names = [sp["name"] for sp in model.user_specs]
    with autocast(model):  # bf16: the trace records the casts and the bf16 matmuls
        return trace_tower(OneQueryTower(model.net.query, names).eval(), example)


class LeanServing:
    """The serving half of ``SoftmaxDNN``: :meth:`recommend_one`, :meth:`query_embedding_one`,
    :meth:`serve_info` and the runtimes behind them (a mixin: it reads the fitted model's
    ``net``, ``_V_np``, ``_b_np``, user features and ``serve_runtime``)."""

    def recommend_one(self, user: int, history_items=(), k: int = 10, known: bool = True,
                      runtime: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The lean single-query path (:meth:`RecommenderBase.recommend_one`: ``recommend``'s
        items for the one-row query), its query tower run by ``runtime`` (default
        ``serve_runtime``; see :meth:`serve_info` for what ``auto`` chose). ``known`` changes
        nothing: the tower embeds every query the same way."""
        self._check_fitted()
        hist = self._history_set(history_items)
        if self._V.device.type != "cpu" or (hist.size and (hist[0] < 0 or hist[-1] >= self.n_items)):
            return self._recommend_one_generic(user, hist, k, known)  # its own checks and errors
        return self._lean(self._serve_fn(runtime or self.serve_runtime), int(user), hist, k)

    def _lean(self, fn, user: int, hist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The lean path with tower runtime ``fn`` (``hist`` sorted unique ids in range)."""
        q = fn(*self._one_inputs(user, hist))
        scores = self._V_np @ q
        if self._b_np is not None:
            scores += self._b_np
        if hist.size:
            scores[hist] = -np.inf
        return topk_one(scores, k)

    def query_embedding_one(self, user: int, history_items=(), runtime: str | None = None) -> np.ndarray:
        """psi(x) of one request (d,), through the lean path's tower runtime (``runtime``,
        default ``serve_runtime``): the embed step of :meth:`recommend_one` alone."""
        self._check_fitted()
        hist = self._history_set(history_items)
        if self._V.device.type != "cpu" or (hist.size and (hist[0] < 0 or hist[-1] >= self.n_items)):
            return self.query_embeddings(self._one_query(user, hist, True))[0]
        return self._serve_fn(runtime or self.serve_runtime)(*self._one_inputs(int(user), hist))

    @staticmethod
    def _history_set(history_items) -> np.ndarray:
        """The request's history as sorted unique int64 ids (the CSR row ``recommend`` pools)."""
        hist = np.asarray(history_items, dtype=np.int64).reshape(-1)
        if hist.size > 1:
            hist = np.sort(hist)
            if (hist[1:] == hist[:-1]).any():
                hist = np.unique(hist)
        return hist

    def _one_inputs(self, user: int, hist: np.ndarray) -> tuple:
        """One request's tower inputs ``(flat, offsets, weights, *features)`` (history off:
        the features alone); ``hist`` sorted unique item ids."""
        args = ()
        if self.use_history:
            n = len(hist)
            w = self._serve_weights.get(n)
            if w is None:
                w = torch.full((n,), 1.0 / n, dtype=torch.float32)
                if n <= SERVE_WEIGHT_CACHE:
                    self._serve_weights[n] = w
            args = (torch.from_numpy(hist), self._serve_offsets, w)
        if self.user_specs:
            if not 0 <= user < self.n_users:
                raise IndexError(f"{self.name}: user index out of range 0..{self.n_users - 1} (features unknown)")
            args += tuple(self._uf[sp["name"]][user:user + 1] for sp in self.user_specs)
        return args

    def _eager_one(self, *args) -> np.ndarray:
        """The tower's own forward on one request's inputs (the generic path's computation)."""
        bags, rest = (args[:3], args[3:]) if self.use_history else (None, args)
        feats = ({sp["name"]: x for sp, x in zip(self.user_specs, rest, strict=True)}
                 if self.user_specs else None)
        with torch.inference_mode(), autocast(self):
            return self.net.query(bags, feats)[0].float().numpy()

    def _serve_fn(self, runtime: str):
        if runtime not in SERVE_RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {', '.join(SERVE_RUNTIMES)}")
        serve = self._serving()
        if runtime == "eager":
            return self._eager_one
        if runtime == "torchscript" and serve["torchscript"] is None:
            serve = self._serving(trace=True)
            if serve["torchscript"] is None:
                raise RuntimeError(f"{self.name}: serve_runtime='torchscript' unavailable: {serve['reason']}")
        if runtime == "auto":  # built, and chosen at the current thread count
            serve = self._serving(trace=True)
        return serve["torchscript"] if runtime == "torchscript" else serve["auto"]

    def _serving(self, trace: bool = False) -> dict:
        """The lean path's runtimes, built once per set of weights: preallocated inputs, and
        with ``trace`` the TorchScript tower checked against eager on a few requests."""
        serve = self._serve
        if serve is None:
            self._serve_offsets = torch.zeros(1, dtype=torch.int64)
            self._serve_weights = {0: torch.zeros(0, dtype=torch.float32)}  # bag length -> 1/len
            serve = self._serve = {"torchscript": None, "auto": None, "reason": None,
                                   "max_abs_diff": None, "checked": 0, "lean_us": None,
                                   "threads": None}
        if trace and serve["auto"] is None:
            self._build_trace(serve)
        elif trace and serve["torchscript"] is not None and serve["threads"] != torch.get_num_threads():
            self._choose_auto(serve)  # the choice was timed at another thread count
        return serve

    def _choose_auto(self, serve: dict) -> None:
        """``auto``'s runtime: TorchScript unless eager is :data:`AUTO_MARGIN` times faster
        through the whole lean path at the current thread count (:func:`lean_timings`)."""
        fns = {"torchscript": serve["torchscript"], "eager": self._eager_one}
        us = lean_timings(self, fns, self._check_requests())
        threads = torch.get_num_threads()
        serve.update(lean_us=us, threads=threads)
        if us["eager"] * AUTO_MARGIN < us["torchscript"]:
            serve.update(auto=self._eager_one,
                         reason=f"eager faster inside the lean path at {threads} thread(s) "
                                f"({us['eager']:.0f} vs {us['torchscript']:.0f} us)")
        else:
            serve.update(auto=serve["torchscript"], reason=None)

    def _check_requests(self) -> list[tuple]:
        """A few requests the trace must agree with eager on: empty, one-item, short and long
        histories, first, middle and last users."""
        rng = np.random.default_rng(self.seed)
        n = self.n_items
        hists = [np.zeros(0, np.int64), np.array([n - 1]), np.arange(min(n, 3)),
                 np.sort(rng.choice(n, size=min(n, 25), replace=False))]
        users = [0, self.n_users // 2, max(0, self.n_users - 1)]
        return [(users[i % len(users)], h) for i, h in enumerate(hists)]

    def _build_trace(self, serve: dict) -> None:
        def fail(reason):
            serve.update(torchscript=None, auto=self._eager_one, reason=reason)

        checks = [self._one_inputs(u, h) for u, h in self._check_requests()]
        try:
            traced = _trace_query_tower(self, checks[-1])

            def torchscript(*args):
                # no grad-mode context: the frozen trace's weights are constants and the inputs
                # never require grad, so no graph is recorded (the context costs a few µs)
                return traced(*args)[0].float().numpy()

            worst = 0.0
            for args in checks:
                ref = self._eager_one(*args)
                out = torchscript(*args)
                if out.shape != ref.shape:
                    return fail(f"TorchScript output shape {out.shape} != eager {ref.shape}")
                worst = max(worst, float(np.max(np.abs(out - ref)) / max(1.0, float(np.max(np.abs(ref))))))
        except Exception as exc:  # noqa: BLE001 - a runtime that does not build falls back
            return fail(f"TorchScript failed: {type(exc).__name__}: {exc}"[:300])
        serve.update(max_abs_diff=worst, checked=len(checks))
        tol = SERVE_TOLERANCE_BF16 if self.precision_resolved == "bf16" else SERVE_TOLERANCE
        if not worst <= tol:
            return fail(f"TorchScript output differs from eager by {worst:.3g} (> {tol:g})")
        serve.update(torchscript=torchscript, auto=torchscript, reason=None)
        self._choose_auto(serve)

    def serve_info(self, runtime: str | None = None) -> dict:
        """What :meth:`recommend_one` runs the tower with: ``{"requested", "runtime"
        ("eager" | "torchscript"), "reason" (why not TorchScript, when not), "max_abs_diff"
        (TorchScript vs eager, relative to max(1, |eager|), on ``checked`` requests)}``;
        builds the runtime if it is not built yet."""
        self._check_fitted()
        requested = runtime or self.serve_runtime
        if self._V.device.type != "cpu":
            return {"requested": requested, "runtime": "generic", "reason": "not on CPU",
                    "max_abs_diff": None, "checked": 0}
        if requested == "eager":
            serve = self._serving()
            chosen = "eager"
            reason = "serve_runtime='eager'"
        else:
            serve = self._serving(trace=True)
            chosen = "torchscript" if serve["auto"] is serve["torchscript"] and serve["torchscript"] else "eager"
            reason = serve["reason"]
        return {"requested": requested, "runtime": chosen, "reason": reason,
                "max_abs_diff": serve["max_abs_diff"], "checked": serve["checked"],
                "lean_us": serve.get("lean_us"), "threads": serve.get("threads")}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_serve"] = None  # TorchScript functions do not pickle; rebuilt on the next request
        return state

