"""The softmax DNN's ``precision`` (issue 27): bf16 matmuls under ``torch.autocast`` in training
and in the query tower, tables / parameters / optimiser state / the loss's reduction float32;
``auto`` resolved from the CPU's flags; the resolved precision recorded for every model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfsoftmax.bench.engines import precision_of
from mfsoftmax.bench.measure import sample_precision_peaks, timed_fit
from mfsoftmax.datasets import load, make_split
from mfsoftmax.evaluation import evaluate
from mfsoftmax.models import SoftmaxDNN
from mfsoftmax.models.popularity import Popularity
from mfsoftmax.models.softmax import train as softmax_train
from mfsoftmax.models.softmax.precision import cpu_bf16_flags, resolve_precision

SMALL = dict(dim=32, hidden=(64,), n_negatives=50, epochs=4, patience=4, batch_size=256, lr=0.003)
#: bf16 must reach the fp32 model's validation Recall@20 within this (absolute)
RECALL_TOL = 0.03


@pytest.fixture(scope="module")
def split():
    return make_split(load("synthetic", n_users=600, n_items=400), "strong", seed=0,
                      heldout_frac=0.1)


@pytest.mark.parametrize("loss", ["sampled-uniform", "in-batch", "full"])
def test_bf16_training_reaches_fp32_recall(split, loss):
    recall = {}
    for precision in ("fp32", "bf16"):
        model = SoftmaxDNN(loss=loss, precision=precision, **SMALL).fit(split.train, split.valid)
        recall[precision] = evaluate(model, split.valid, ks=(20,))["recall@20"]
        assert model.precision_resolved == precision
    assert recall["fp32"] > 0.1, recall  # a model that learned something
    assert abs(recall["bf16"] - recall["fp32"]) <= RECALL_TOL, recall


def test_bf16_runs_the_matmuls_in_bf16_and_keeps_state_fp32(split, monkeypatch):
    model = SoftmaxDNN(loss="sampled-uniform", precision="bf16", **dict(SMALL, epochs=1))
    seen = []
    real = torch.nn.Linear.forward

    def spy(self, x):
        out = real(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    made = []
    real_opts = softmax_train.optimizers
    monkeypatch.setattr(softmax_train, "optimizers", lambda m: made.extend(real_opts(m)) or made)
    model.fit(split.train)
    assert torch.bfloat16 in seen  # training's MLP ran in bf16
    assert all(p.dtype == torch.float32 for p in model.net.parameters())
    states = []
    for opt in made:  # torch's optimisers: state per parameter; the lazy row optimiser: tuples
        st = opt.state
        for entry in (st.values() if isinstance(st, dict) else st):
            states += [v for v in (entry.values() if isinstance(entry, dict) else entry)
                       if torch.is_tensor(v)]
    assert states and all(v.dtype == torch.float32 for v in states if v.is_floating_point())
    seen.clear()
    q = model.query_embedding_one(0, np.array([1, 2, 3]), runtime="eager")
    assert seen == [torch.bfloat16] * len(seen) and seen and q.dtype == np.float32
    fp32 = SoftmaxDNN(loss="sampled-uniform", precision="fp32", **dict(SMALL, epochs=1))
    seen.clear()
    fp32.fit(split.train)
    assert torch.bfloat16 not in seen


def test_lean_path_in_bf16_equals_recommend(split):
    from mfsoftmax.models import Queries

    model = SoftmaxDNN(loss="in-batch", precision="bf16", **dict(SMALL, epochs=1)).fit(split.train)
    m = split.train.matrix
    info = model.serve_info()
    assert info["runtime"] in ("torchscript", "eager") and info["max_abs_diff"] is not None
    for u in range(5):
        hist = m.indices[m.indptr[u]:m.indptr[u + 1]]
        q = Queries(np.array([u]), m[u], known=True)
        ref = model.score(q)[0]
        _, scores = model.recommend_one(u, hist, k=5)
        top = np.sort(np.where(np.isin(np.arange(len(ref)), hist), -np.inf, ref))[::-1][:5]
        np.testing.assert_allclose(scores, top, rtol=0.05, atol=0.05)  # bf16 rounding


def test_resolve_precision_from_cpu_flags():
    amx = "processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n"
    zen4 = "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
    old = "flags\t\t: fpu sse avx2\n"
    assert cpu_bf16_flags(amx) == ["amx_bf16"] and cpu_bf16_flags(zen4) == ["avx512_bf16"]
    assert cpu_bf16_flags(old) == [] and cpu_bf16_flags("") == []
    assert resolve_precision("auto", "cpu", amx) == "bf16"
    assert resolve_precision("auto", "cpu", zen4) == "bf16"
    assert resolve_precision("auto", "cpu", old) == "fp32"
    assert resolve_precision("fp32", "cpu", amx) == "fp32"
    assert resolve_precision("bf16", "cpu", old) == "bf16"


def test_precision_parameter_validated_saved_and_recorded(split, tmp_path):
    with pytest.raises(ValueError, match="precision='fp16'"):
        SoftmaxDNN(precision="fp16")
    model = SoftmaxDNN(precision="auto", **dict(SMALL, epochs=1))
    assert model.precision_resolved == resolve_precision("auto", "cpu")
    assert model.precision_info()["precision"] == "auto"
    assert SoftmaxDNN(precision="bf16", workers=2).precision_resolved == "bf16"  # DDP ranks too
    model = SoftmaxDNN(precision="bf16", **dict(SMALL, epochs=1))
    row = timed_fit(model, split.train)
    assert row["precision"] == "bf16" and model.get_params()["precision"] == "bf16"
    model.save(tmp_path / "m")
    assert SoftmaxDNN.load(tmp_path / "m").precision_resolved == "bf16"
    pop = Popularity()
    assert timed_fit(pop, split.train)["precision"] == "fp32" == precision_of(pop)


def test_calibration_records_both_peaks():
    cal = {"matmul_gflops": 10.0}
    got = sample_precision_peaks(cal, n=64, repeats=2)
    sample_precision_peaks(cal, n=64, repeats=2)
    assert set(got) == {"fp32", "bf16"} and all(v > 0 for v in got.values())
    for dt in ("fp32", "bf16"):
        assert len(cal["matmul_peak_samples"][dt]) == 2
        assert cal["matmul_peak_gflops"][dt] == max(cal["matmul_peak_samples"][dt])
    assert cal["bf16_over_fp32"] == pytest.approx(
        cal["matmul_peak_gflops"]["bf16"] / cal["matmul_peak_gflops"]["fp32"], rel=1e-2)
    assert cal["matmul_gflops"] == 10.0  # numpy's float32 calibration untouched
