"""The fused sampled and in-batch losses against autograd's own ops (pytest-benchmark).

Run: ``pytest bench/test_bench_losses.py --benchmark-enable -p no:cacheprovider``.

``epoch-loss-fusion``: one epoch of ml-20m-shape's two DNN configs (``configs/ml-20m-shape.toml``:
d 64, MLP 128, history 30; sampled-uniform with 1,000 negatives at batch 8192, in-batch at batch
2048) on synthetic data with its 26,744 items (``INTERACTIONS`` when enabled, 5,000 in the smoke
run), in fp32 and bf16, with the fused losses (``losses.sampled_softmax_loss``,
``losses.in_batch_loss``) and with their unfused references swapped in; all eight cases in every
round (rounds interleaved), one thread. Recorded: each case's epoch (minimum and median), the
fused speed-up per loss and precision, and bf16 fused against fp32 unfused (the two changes
together). Asserted when enabled: the fused epoch is not slower than the unfused one.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from mfsoftmax.models.softmax import SoftmaxDNN
from mfsoftmax.models.softmax import losses as L

INTERACTIONS = 500_000
ROUNDS = 3
CONFIGS = {"sampled": dict(loss="sampled-uniform", n_negatives=1000, batch_size=8192),
           "in-batch": dict(loss="in-batch", batch_size=2048)}
BASE = dict(dim=64, hidden=(128,), lr=0.003, epochs=1, patience=1, max_history=30, threads=1,
            seed=0)


def _unfused(fn):
    """The unfused reference with train.py's ``out=`` buffer argument dropped."""
    return lambda *a, out=None, **k: fn(*a, **k)


@pytest.mark.benchmark(group="epoch-loss-fusion")
def test_fused_vs_unfused_epoch(benchmark, monkeypatch):
    from mfsoftmax.datasets import load

    n = INTERACTIONS if benchmark.enabled else 5_000
    data = load("synthetic", n_users=max(100, n // 20), n_items=26744, n_groups=20,
                mean_activity=20.0, seed=0)
    impls = {"fused": (L.sampled_softmax_loss, L.in_batch_loss),
             "unfused": (_unfused(L.sampled_softmax_loss_unfused),
                         _unfused(L.in_batch_loss_unfused))}
    times: dict = {}

    def one_round():
        for kind, cfg in CONFIGS.items():
            for precision in ("fp32", "bf16"):
                for impl, (sampled, in_batch) in impls.items():
                    monkeypatch.setattr(L, "sampled_softmax_loss", sampled)
                    monkeypatch.setattr(L, "in_batch_loss", in_batch)
                    model = SoftmaxDNN(**BASE, **cfg, precision=precision).fit(data)
                    times.setdefault((kind, precision, impl), []).append(model.history[0]["wall_s"])
        monkeypatch.undo()

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.pedantic(one_round, rounds=ROUNDS if benchmark.enabled else 1, iterations=1)
    finally:
        torch.set_num_threads(prev)
    med = {k: statistics.median(v) for k, v in times.items()}
    info = {"n_interactions": int(data.n_interactions),
            "epoch_s": {"/".join(k): {"min": min(v), "median": med[k]} for k, v in times.items()}}
    for kind in CONFIGS:
        for precision in ("fp32", "bf16"):
            info[f"{kind}/{precision}/fused_speedup"] = (
                med[kind, precision, "unfused"] / med[kind, precision, "fused"])
        info[f"{kind}/bf16_fused_vs_fp32_unfused"] = (
            med[kind, "fp32", "unfused"] / med[kind, "bf16", "fused"])
    benchmark.extra_info.update(info)
    for kind in CONFIGS:
        print(f"\n{kind}: " + ", ".join(
            f"{p} {med[kind, p, 'unfused']:.2f} -> {med[kind, p, 'fused']:.2f} s "
            f"({info[f'{kind}/{p}/fused_speedup']:.2f}x)" for p in ("fp32", "bf16"))
            + f"; bf16 fused vs fp32 unfused {info[f'{kind}/bf16_fused_vs_fp32_unfused']:.2f}x")
    assert all(v > 0 for v in med.values())
    if benchmark.enabled:
        for kind in CONFIGS:
            for precision in ("fp32", "bf16"):
                assert info[f"{kind}/{precision}/fused_speedup"] >= 1.0, (kind, precision)
