"""The A/B gate's kernel worker: one process per commit, run by that commit's own interpreter.

``mfsoftmax ab`` starts this file (shipped by head) with the environment of each commit, so
``import mfsoftmax`` there is that commit's code. It only uses APIs present since the committed
baseline's commit (39fc11c): ``datasets.load("synthetic" | "file")``, ``make_split``,
``WALS``, ``SoftmaxDNN``, ``recommend_one`` and ``evaluate``. A kernel whose setup fails (an
older commit without that API) is reported as missing, not a crash.

Protocol: one JSON object per line on stdin, one answer per line on the original stdout
(library prints go to stderr). ``{"cmd": "setup", "kernels": [...]}`` builds the fixed data and
fitted models and runs each kernel twice (warm-up, and the repeat count of a sample: enough
calls for :data:`SAMPLE_S` of CPU time); ``{"cmd": "run", "kernel": NAME}`` times one sample;
``{"cmd": "quit"}`` ends. A sample is the CPU time of this thread per call
(``time.thread_time``: not charged for preemption by a concurrent process) and the wall time;
a kernel whose library works on its own threads (:data:`PROCESS_CPU`: the loader's polars
parse) is timed by the CPU time of the whole process instead, so that work counts too.

Slowdown injection (the gate's proof and tests): ``MFSOFTMAX_AB_SLOWDOWN="NAME=F,..."`` (or a
bare ``F`` for every kernel) adds a busy loop of ``(F - 1)`` x the sample's own CPU time after
the kernel: real extra CPU work, not a sleep. The gate passes it to the head worker only.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SEED = 0
N_USERS, N_ITEMS = 800, 1000  # small fixed synthetic data (planted groups, seed 0)
SERVE_CALLS = 100  # single queries per call of a serving kernel
PER_CALL = {"serve.wals_one": SERVE_CALLS, "serve.dnn_one": SERVE_CALLS}  # times per query
SAMPLE_S = 0.05  # a sample repeats a kernel to at least this much CPU time (set at warm-up)
SLOWDOWN_ENV = "MFSOFTMAX_AB_SLOWDOWN"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: kernels timed by the process's CPU time (their work runs on a library's own threads: the
#: calling thread's CPU time saw a 1.25x injection as x1.03-1.14 in 3 of 20 proof repeats)
PROCESS_CPU = ("data.load_file",)


def slowdowns(text: str | None) -> dict:
    """``"NAME=F,..."`` or ``"F"`` -> ``{name or "*": factor}``; ValueError naming the bad part."""
    out = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, factor = part.rpartition("=")
        value = float(factor)
        if not value >= 1.0:
            raise ValueError(f"{SLOWDOWN_ENV}: factor {factor!r} of {part!r} must be >= 1")
        out[name.strip() or "*"] = value
    return out


def spin(seconds: float, clock=time.thread_time) -> None:
    """Busy loop for ``seconds`` of ``clock`` (this thread's CPU time; the injected slowdown)."""
    end = clock() + seconds
    x = 0.0
    while clock() < end:
        for _ in range(200):
            x = x * 0.999 + 1.0


# ---- synthetic kernels: no mfsoftmax needed (the tests' fast version of the gate) ----------

def _synthetic_kernels() -> dict:
    import numpy as np  # lazy: after main() pins the BLAS threads

    a = np.random.default_rng(SEED).standard_normal((96, 96))

    def matmul():
        for _ in range(60):
            a @ a

    def python():
        s = 0
        for i in range(60_000):
            s += i * i
        return s

    return {"synthetic.matmul": lambda: matmul, "synthetic.python": lambda: python}


# ---- the gated kernels: each commit's own code ----------------------------------------------

class Fixture:
    """The fixed data and fitted models the kernels share, built on first use."""

    def __init__(self):
        self._split = self._wals = self._dnn = self._request = None

    def split(self):
        if self._split is None:
            from mfsoftmax.datasets import load, make_split  # lazy: the commit's code, on use

            data = load("synthetic", n_users=N_USERS, n_items=N_ITEMS, seed=SEED)
            self._split = make_split(data, "strong", seed=SEED, heldout_frac=0.1)
        return self._split

    def wals(self, iterations=5):
        from mfsoftmax.models import WALS  # lazy: the commit's code, on use (both layouts)

        return WALS(dim=32, iterations=iterations, track_loss=False, seed=SEED, threads=1)

    def dnn(self, loss, epochs=1):
        from mfsoftmax.models import SoftmaxDNN  # lazy: the commit's code, on use

        return SoftmaxDNN(dim=32, hidden=(64,), loss=loss, epochs=epochs, patience=epochs,
                          batch_size=256, seed=SEED, threads=1)

    def fitted_wals(self):
        if self._wals is None:
            self._wals = self.wals().fit(self.split().train)
        return self._wals

    def fitted_dnn(self):
        if self._dnn is None:
            self._dnn = self.dnn("sampled-uniform").fit(self.split().train)
        return self._dnn

    def request(self):
        """One known user with a median-length history: ``(user, history ids)``."""
        if self._request is None:
            import numpy as np  # lazy: after main() pins the BLAS threads

            m = self.split().train.matrix
            lens = np.diff(m.indptr)
            active = np.flatnonzero(lens > 0)
            user = int(active[np.argsort(lens[active], kind="stable")[len(active) // 2]])
            self._request = (user, m.indices[m.indptr[user]:m.indptr[user + 1]].astype(np.int64))
        return self._request


def _train(fx: Fixture, make):
    train = fx.split().train
    return lambda: make().fit(train)


def _serve(fx: Fixture, fitted):
    model = fitted()
    user, hist = fx.request()

    def run():
        for _ in range(SERVE_CALLS):
            model.recommend_one(user, hist, 10)

    return run


def _harness(fx: Fixture):
    from mfsoftmax.evaluation import evaluate  # lazy: the commit's code, on use

    model, test = fx.fitted_wals(), fx.split().test
    return lambda: evaluate(model, test, ks=(10, 20))


def _load_file(fx: Fixture):
    """Parse a CSV of the synthetic data's interactions through the ``file`` loader."""
    import numpy as np  # lazy: after main() pins the BLAS threads

    from mfsoftmax.datasets import load  # lazy: the commit's code, on use

    coo = fx.split().data.matrix.tocoo()
    folder = tempfile.mkdtemp(prefix="mfsoftmax-ab-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "interactions.csv"
    rows = np.column_stack([coo.row, coo.col, np.ones_like(coo.row)])
    np.savetxt(path, rows, fmt="%d", delimiter=",", header="user,item,rating", comments="")
    return lambda: load("file", path=str(path))


def _model_kernels() -> dict:
    fx = Fixture()
    return {
        "train.wals_iteration": lambda: _train(fx, lambda: fx.wals(iterations=1)),
        "train.dnn_sampled_epoch": lambda: _train(fx, lambda: fx.dnn("sampled-uniform")),
        "train.dnn_inbatch_epoch": lambda: _train(fx, lambda: fx.dnn("in-batch")),
        "serve.wals_one": lambda: _serve(fx, fx.fitted_wals),
        "serve.dnn_one": lambda: _serve(fx, fx.fitted_dnn),
        "harness.evaluate": lambda: _harness(fx),
        "data.load_file": lambda: _load_file(fx),
    }


# ---- the loop ---------------------------------------------------------------------------------

def _pin_threads() -> dict:
    info = {k: os.environ.get(k) for k in THREAD_VARS}
    try:
        from threadpoolctl import threadpool_limits  # optional: an old env may lack it

        threadpool_limits(limits=1)
        info["threadpoolctl"] = 1
    except ImportError:
        pass
    if "torch" in sys.modules or _has("torch"):
        import torch  # lazy: only when installed, after the thread variables

        torch.set_num_threads(1)
        info["torch_threads"] = torch.get_num_threads()
    return info


def _has(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _setup(names: list[str], factors: dict) -> tuple[dict, dict]:
    makers = {**_synthetic_kernels()}
    info = {"python": sys.executable, "pid": os.getpid(), "threads": _pin_threads(),
            "slowdown": factors, "missing": {}}
    try:
        import mfsoftmax  # lazy: the commit's code, after the thread variables

        info["mfsoftmax"] = str(Path(mfsoftmax.__file__).resolve().parent)
        makers.update(_model_kernels())
    except Exception as exc:  # noqa: BLE001 - reported, the gate decides
        info["import_error"] = f"{type(exc).__name__}: {exc}"
    bodies, info["reps"] = {}, {}
    for name in names:
        if name not in makers:
            info["missing"][name] = "no such kernel in this worker"
            continue
        try:
            body = makers[name]()
            clock = _clock(name)
            t0 = clock()
            body()  # warm-up (first-call costs: imports, TorchScript, caches)
            body()
            once = max(clock() - t0, 1e-6) / 2
        except Exception as exc:  # noqa: BLE001 - an older commit without the API
            info["missing"][name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        bodies[name] = (body, max(1, round(SAMPLE_S / once)), PER_CALL.get(name, 1), clock)
        info["reps"][name] = bodies[name][1]
    return bodies, info


def _clock(name: str):
    """The CPU clock a kernel is timed by: the process's for :data:`PROCESS_CPU`, else this
    thread's."""
    return time.process_time if name in PROCESS_CPU else time.thread_time


def _sample(body, reps: int, per_call: int, factor: float, clock=time.thread_time) -> dict:
    """One sample: ``reps`` calls of ``body``; CPU time (by ``clock``) and wall time per call
    (per query for a serving kernel: a call is ``per_call`` queries)."""
    w0, t0 = time.perf_counter(), clock()
    for _ in range(reps):
        body()
    t1 = clock()
    if factor > 1.0:
        spin((factor - 1.0) * (t1 - t0), clock)
    n = reps * per_call
    return {"cpu_s": (clock() - t0) / n, "wall_s": (time.perf_counter() - w0) / n}


def main() -> int:
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # head's bench/ab modules must not shadow anything of the commit's
    for var in THREAD_VARS:
        os.environ[var] = "1"  # before numpy loads its BLAS
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed by the libraries goes to stderr
    sys.stdout = sys.stderr
    factors = slowdowns(os.environ.get(SLOWDOWN_ENV))
    bodies: dict = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "setup":
            bodies, info = _setup(list(msg["kernels"]), factors)
            answer = info
        elif msg["cmd"] == "run":
            name = msg["kernel"]
            body, reps, per_call, clock = bodies[name]
            answer = _sample(body, reps, per_call, factors.get(name, factors.get("*", 1.0)), clock)
        else:
            return 0
        proto.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
