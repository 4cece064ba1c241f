"""bf16 in the data-parallel softmax DNN (``workers > 1``, issue 27): every rank runs its shard's
forward under the same autocast as the single-process step, all-reduces float32 gradients, and
records per rank what it ran in (``train_info``); quality against the fp32 data-parallel fit."""

import pytest
import torch
import torch.distributed as dist

from mfsoftmax.bench.engines import precision_of
from mfsoftmax.datasets import load, make_split
from mfsoftmax.evaluation import evaluate
from mfsoftmax.models import SoftmaxDNN
from mfsoftmax.models.softmax.ddp import _check_precision, active_precision
from tests.test_softmax_ddp import DATA, KW, _no_children
from tests.test_softmax_precision import RECALL_TOL

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(scope="module")
def split():
    return make_split(load("synthetic", **DATA), "holdout", seed=0)


@pytest.mark.parametrize("loss", ["sampled-uniform", "in-batch"])
def test_bf16_ranks_reach_the_fp32_ranks_recall(split, loss):
    """2 gloo ranks in bf16: autocast entered on every rank, float32 gradients all-reduced,
    bf16 recorded, and the validation Recall@20 of the 2-rank fp32 fit within RECALL_TOL."""
    recall, models = {}, {}
    for precision in ("fp32", "bf16"):
        model = SoftmaxDNN(workers=2, precision=precision, loss=loss, item_bias=True, **KW)
        models[precision] = model.fit(split.train, split.valid)
        recall[precision] = evaluate(model, split.valid, ks=(20,))["recall@20"]
    assert recall["fp32"] > 0.1, recall  # a model that learned something
    assert abs(recall["bf16"] - recall["fp32"]) <= RECALL_TOL, recall
    for precision, model in models.items():
        info = model.train_info
        assert model.precision_resolved == precision == precision_of(model)  # results' row
        assert info["precision"] == precision and info["rank_precision"] == [precision] * 2, info
        # DDP's buckets and the sparse tables' rows: float32 on every rank, in both precisions
        assert info["reduce_dtypes"] == [["float32"], ["float32"]], info
        assert all(p.dtype == torch.float32 for p in model.net.parameters())
    assert _no_children()


def test_a_rank_in_another_precision_is_refused():
    """run_rank's check after the ranks gathered what they ran in (``_check_precision``)."""
    model = SoftmaxDNN(workers=2, precision="bf16")
    assert model.precision_resolved == "bf16"  # was fp32: the ranks did not autocast
    _check_precision(model, ["bf16", "bf16"])
    _check_precision(model, ["bf16", None])  # a rank that took no step
    with pytest.raises(RuntimeError, match=r"resolves to bf16.*rank 1: fp32"):
        _check_precision(model, ["bf16", "fp32"])


def test_active_precision_reads_the_autocast_state():
    assert active_precision("cpu") == "fp32"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert active_precision("cpu") == "bf16"
        with torch.autocast("cpu", enabled=False):
            assert active_precision("cpu") == "fp32"
