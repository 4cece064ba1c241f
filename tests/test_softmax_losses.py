"""Each softmax-DNN loss against a direct computation on a tiny example."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mfsoftmax.models.softmax import losses as L


@pytest.fixture
def tiny():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, generator=g, dtype=torch.float64)
    V = torch.randn(6, 3, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 2, 5, 2])
    return q, V, pos


def direct_ce(logits_rows, target_cols):
    """-log softmax by hand, averaged."""
    out = []
    for row, t in zip(logits_rows, target_cols, strict=True):
        finite = [x for x in row if x != -math.inf]
        out.append(-(row[t] - math.log(sum(math.exp(x) for x in finite))))
    return sum(out) / len(out)


def test_full_softmax_matches_direct(tiny):
    q, V, pos = tiny
    s = (q @ V.T).tolist()
    assert L.full_softmax_loss(q, V, pos).item() == pytest.approx(direct_ce(s, pos.tolist()), rel=1e-12)


@pytest.mark.parametrize("shift", [0.0, 1.7, -3.0])
def test_sampled_with_all_items_and_uniform_q_equals_full(tiny, shift):
    q, V, pos = tiny
    n = V.shape[0]
    neg = torch.arange(n)  # every item is a negative; the positive itself is an accidental hit
    # uniform Q = 1/n, m = n gives log(mQ) = 0; any constant log(mQ) leaves the loss unchanged
    log_mq = torch.full((n,), shift, dtype=torch.float64)
    sampled = L.sampled_softmax_loss(q, V[pos], V[neg], pos, neg, log_mq[pos], log_mq[neg])
    assert sampled.item() == pytest.approx(L.full_softmax_loss(q, V, pos).item(), rel=1e-12)


def test_logq_correction_sign_and_scale():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    v_pos = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    v_neg = torch.tensor([[1.0, 5.0], [-1.0, 0.0]], dtype=torch.float64)
    pos, neg = torch.tensor([7]), torch.tensor([1, 2])
    m = 2
    Q = {7: 0.25, 1: 0.5, 2: 0.125}
    log_mq = {j: math.log(m * p) for j, p in Q.items()}
    logits = L.sampled_logits(q, v_pos, v_neg, pos, neg, torch.tensor([log_mq[7]], dtype=torch.float64),
                              torch.tensor([log_mq[1], log_mq[2]], dtype=torch.float64))
    # s_j - log(m Q(j)): 2 - log 0.5, 1 - log 1, -1 - log 0.25
    expected = [2.0 + math.log(2.0), 1.0, -1.0 + math.log(4.0)]
    np.testing.assert_allclose(logits.numpy()[0], expected, rtol=1e-12)
    # a rarer item (smaller Q) gets a larger boost
    assert logits[0, 2] - (-1.0) > logits[0, 1] - 1.0


def test_sampled_accidental_hits_removed(tiny):
    q, V, pos = tiny
    neg = torch.tensor([2, 1, 2, 4])  # rows 1 and 3 have positive 2; row 0 has positive 0
    z = torch.zeros(4, dtype=torch.float64)
    logits = L.sampled_logits(q, V[pos], V[neg], pos, neg, z, z)
    hit = (neg[None, :] == pos[:, None]).numpy()
    assert np.isneginf(logits[:, 1:].numpy()[hit]).all()
    assert np.isfinite(logits[:, 1:].numpy()[~hit]).all()
    assert hit.sum() == 4  # rows 1 and 3, two columns each
    # the loss equals the direct computation with the hits left out
    rows = []
    for b in range(4):
        row = [float(q[b] @ V[pos[b]])] + [float(q[b] @ V[j]) if j != pos[b] else -math.inf for j in neg.tolist()]
        rows.append(row)
    loss = L.sampled_softmax_loss(q, V[pos], V[neg], pos, neg, z, z)
    assert loss.item() == pytest.approx(direct_ce(rows, [0] * 4), rel=1e-12)


def test_in_batch_masking_and_logq():
    q = torch.eye(3, dtype=torch.float64)
    pos = torch.tensor([3, 5, 3])
    v_pos = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]], dtype=torch.float64)
    log_q = torch.tensor([0.5, -1.0, 0.5], dtype=torch.float64)
    logits = L.in_batch_logits(q, v_pos, pos, log_q).numpy()
    # row 0 and row 2 share item 3: off-diagonal columns of the same item are masked
    assert np.isneginf(logits[0, 2]) and np.isneginf(logits[2, 0])
    # everything else is s_ij - log Q(pos_j)
    expected = (q @ v_pos.T).numpy() - log_q.numpy()[None, :]
    mask = np.zeros((3, 3), bool)
    mask[0, 2] = mask[2, 0] = True
    np.testing.assert_allclose(logits[~mask], expected[~mask], rtol=1e-12)
    loss = L.in_batch_loss(q, v_pos, pos, log_q).item()
    assert loss == pytest.approx(direct_ce(logits.tolist(), [0, 1, 2]), rel=1e-12)


def test_hard_negatives_pick_high_score_items():
    pool = torch.tensor([10, 11, 12, 13, 14])
    pos = torch.tensor([12, 99])
    scores = torch.tensor([[0.1, 0.9, 5.0, 0.7, -1.0],   # 12 is this row's positive: excluded
                           [0.3, -2.0, 0.2, 4.0, 0.0]], dtype=torch.float64)
    cols = L.hard_negative_select(scores, pos, pool, 2)
    assert [set(pool[c].tolist()) for c in cols] == [{11, 13}, {13, 10}]
    q = torch.ones(2, 1, dtype=torch.float64)
    v_pos = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    logits = L.hard_negative_logits(q, v_pos, scores, pos, pool, 2).numpy()
    np.testing.assert_allclose(np.sort(logits[:, 1:], axis=1), [[0.7, 0.9], [0.3, 4.0]])
    np.testing.assert_allclose(logits[:, 0], [1.0, 2.0])


def test_hard_negatives_mask_hit_when_pool_is_too_small():
    pool = torch.tensor([4, 5])
    pos = torch.tensor([4])
    scores = torch.tensor([[3.0, 1.0]])
    logits = L.hard_negative_logits(torch.ones(1, 1), torch.ones(1, 1), scores, pos, pool, 2)
    assert np.isneginf(logits[0, 1:].numpy()).sum() == 1  # the positive can't be its own negative
    assert torch.isfinite(L.hard_negative_loss(torch.ones(1, 1), torch.ones(1, 1), scores, pos, pool, 2))


def test_positives_only_is_minus_log_sigmoid(tiny):
    q, V, pos = tiny
    s = (q * V[pos]).sum(1)
    direct = float(np.mean([-math.log(1 / (1 + math.exp(-x))) for x in s.tolist()]))
    assert L.positives_only_loss(q, V[pos]).item() == pytest.approx(direct, rel=1e-12)


def test_gravity_gramian_equals_double_sum(tiny):
    q, V, _ = tiny
    B, n = q.shape[0], V.shape[0]
    double = sum(float(q[i] @ V[j]) ** 2 for i in range(B) for j in range(n)) / (B * n)
    gram = float(((q.T @ q) * (V.T @ V)).sum()) / (B * n)
    assert L.gravity(q, V).item() == pytest.approx(double, rel=1e-12)
    assert gram == pytest.approx(double, rel=1e-12)


def test_gravity_gradient_matches_autograd_of_double_sum(tiny):
    q, V, _ = tiny
    a = V.clone().requires_grad_(True)
    L.gravity(q, a).backward()
    b = V.clone().requires_grad_(True)
    ((q @ b.T) ** 2).mean().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)


def test_full_softmax_gradient_is_p_minus_onehot(tiny):
    q, V, pos = tiny
    qq = q.clone().requires_grad_(True)
    L.full_softmax_loss(qq, V, pos).backward()
    p = F.softmax(q @ V.T, dim=1)
    onehot = F.one_hot(pos, V.shape[0]).double()
    np.testing.assert_allclose(qq.grad.numpy(), ((p - onehot) @ V / len(pos)).numpy(), rtol=1e-10)


def test_full_softmax_reused_buffer_matches_and_stale_graph_fails(tiny):
    q, V, pos = tiny
    buf = torch.empty(len(pos), V.shape[0], dtype=q.dtype)
    grads = []
    for out in (None, buf, buf):  # the buffer is reused by the second and third steps
        qq = q.clone().requires_grad_(True)
        loss = L.full_softmax_loss(qq, V, pos, out=out)
        loss.backward()
        grads.append((loss.item(), qq.grad))
    for loss, grad in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-12)
        np.testing.assert_allclose(grad.numpy(), grads[0][1].numpy(), rtol=1e-12)
    qq = q.clone().requires_grad_(True)
    stale = L.full_softmax_loss(qq, V, pos, out=buf)
    L.full_softmax_loss(q, V, pos, out=buf)  # overwrites the first graph's buffer
    with pytest.raises(RuntimeError, match="inplace"):
        stale.backward()


@pytest.fixture
def bias():
    return torch.tensor([0.3, -1.2, 2.0, 0.0, 0.7, -0.4], dtype=torch.float64)


def test_full_softmax_with_bias_matches_direct(tiny, bias):
    q, V, pos = tiny
    s = [[float(q[i] @ V[j]) + float(bias[j]) for j in range(V.shape[0])] for i in range(q.shape[0])]
    assert L.full_softmax_loss(q, V, pos, bias).item() == pytest.approx(direct_ce(s, pos.tolist()), rel=1e-12)
    assert L.full_softmax_loss(q, V, pos, bias).item() != pytest.approx(L.full_softmax_loss(q, V, pos).item())


def test_sampled_bias_enters_before_logq(tiny, bias):
    q, V, pos = tiny
    neg = torch.tensor([1, 3, 4])
    log_mq = torch.tensor([0.1, -0.5, 0.9, 0.2, -1.0, 0.3], dtype=torch.float64)
    logits = L.sampled_logits(q, V[pos], V[neg], pos, neg, log_mq[pos], log_mq[neg], bias[pos], bias[neg])
    for b in range(4):
        p = int(pos[b])
        expected = [float(q[b] @ V[p]) + float(bias[p]) - float(log_mq[p])]
        expected += [float(q[b] @ V[j]) + float(bias[j]) - float(log_mq[j]) for j in neg.tolist()]
        np.testing.assert_allclose(logits[b].numpy(), expected, rtol=1e-12)
    loss = L.sampled_softmax_loss(q, V[pos], V[neg], pos, neg, log_mq[pos], log_mq[neg], bias[pos], bias[neg])
    assert loss.item() == pytest.approx(direct_ce(logits.tolist(), [0] * 4), rel=1e-12)


def test_in_batch_bias_is_per_column(bias):
    q = torch.eye(3, dtype=torch.float64)
    pos = torch.tensor([3, 5, 3])
    v_pos = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]], dtype=torch.float64)
    log_q = torch.tensor([0.5, -1.0, 0.5], dtype=torch.float64)
    logits = L.in_batch_logits(q, v_pos, pos, log_q, bias[pos]).numpy()
    for i in range(3):
        for j in range(3):
            if pos[i] == pos[j] and i != j:
                assert np.isneginf(logits[i, j])
            else:
                want = float(q[i] @ v_pos[j]) + float(bias[pos[j]]) - float(log_q[j])
                assert logits[i, j] == pytest.approx(want, rel=1e-12)


def test_hard_negatives_and_positives_only_with_bias(tiny, bias):
    q, V, pos = tiny
    pool = torch.tensor([1, 3, 4])
    pool_scores = q @ V[pool].T + bias[pool][None, :]
    logits = L.hard_negative_logits(q, V[pos], pool_scores, pos, pool, 2, bias[pos]).numpy()
    np.testing.assert_allclose(logits[:, 0], ((q * V[pos]).sum(1) + bias[pos]).numpy(), rtol=1e-12)
    s = ((q * V[pos]).sum(1) + bias[pos]).tolist()
    direct = float(np.mean([math.log1p(math.exp(-x)) for x in s]))
    assert L.positives_only_loss(q, V[pos], bias[pos]).item() == pytest.approx(direct, rel=1e-12)


def test_fused_full_softmax_gradients_match_autograd(tiny, bias):
    q, V, pos = tiny
    leaves = [t.clone().requires_grad_(True) for t in (q, V, bias)]
    L.full_softmax_loss(*leaves[:2], pos, leaves[2]).mul(2.5).backward()
    ref = [t.clone().requires_grad_(True) for t in (q, V, bias)]
    F.cross_entropy(ref[0] @ ref[1].T + ref[2], pos).mul(2.5).backward()
    for a, b in zip(leaves, ref, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------- the fused sampled and in-batch losses
def _view(buf, rows, cols):
    """A (rows x cols) view of the flat test buffer ``buf`` (None: no buffer)."""
    return None if buf is None else buf[:rows * cols].view(rows, cols)


def _fused_vs_unfused(dtype, bias, weights, offset, bf16=False, out=None):
    """Loss and gradients (q, V, bias) of the fused loss and of its autograd reference."""
    g = torch.Generator().manual_seed(1)
    B, n, d, m = 37, 60, 8, 25
    q = torch.randn(B, d, generator=g, dtype=dtype, requires_grad=True)
    V = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(n, generator=g, dtype=dtype, requires_grad=True) if bias else None
    pos = torch.randint(0, 12, (B,), generator=g)  # few ids: many accidental hits and repeats
    neg = torch.randint(0, 12, (m,), generator=g)
    lmq = torch.randn(n, generator=g, dtype=dtype)
    w = torch.rand(B, generator=g, dtype=dtype) if weights else None
    params = [t for t in (q, V, b) if t is not None]
    out_rows = {}
    for kind in ("sampled", "in-batch"):
        for fused in (True, False):
            for t in params:
                t.grad = None
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if kind == "sampled":
                    fn = L.sampled_softmax_loss if fused else L.sampled_softmax_loss_unfused
                    extra = {"out": _view(out, B, m)} if fused else {}
                    loss = fn(q, V[pos], V[neg], pos, neg, lmq[pos], lmq[neg],
                              None if b is None else b[pos], None if b is None else b[neg], w=w,
                              **extra)
                else:
                    fn = L.in_batch_loss if fused else L.in_batch_loss_unfused
                    extra = {"out": _view(out, B - offset, B)} if fused else {}
                    rows = slice(offset, B)
                    loss = fn(q[rows], V[pos], pos, lmq[pos], None if b is None else b[pos],
                              w=None if w is None else w[rows], offset=offset, **extra)
            loss.backward()
            out_rows[kind, fused] = [loss.detach().double()] + [t.grad.double() for t in params]
    return out_rows


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("offset", [0, 5])
@pytest.mark.parametrize("dense_max", [0, 1 << 30], ids=["join", "dense"])
def test_fused_sampled_and_in_batch_equal_their_autograd_reference(bias, weights, offset,
                                                                   dense_max, monkeypatch):
    """float64: the fused losses' value and every gradient equal autograd's through the
    masked, concatenated logits to 1e-10 (accidental hits, repeated positives, weights, a
    shard's row offset, item biases), with the hits found by the join and by a dense mask."""
    monkeypatch.setattr(L, "DENSE_MASK_MAX_CELLS", dense_max)
    res = _fused_vs_unfused(torch.float64, bias, weights, offset)
    for kind in ("sampled", "in-batch"):
        for a, r in zip(res[kind, True], res[kind, False], strict=True):
            assert torch.allclose(a, r, rtol=1e-10, atol=1e-12), (kind, (a - r).abs().max())


@pytest.mark.parametrize("dense_max", [0, 1 << 30], ids=["join", "dense"])
def test_fused_losses_under_bf16_autocast_stay_close_and_reuse_a_buffer(dense_max, monkeypatch):
    """Under a bf16 autocast the fused losses (bf16 matmuls, float32 reduction) stay within
    bf16 rounding of autograd's bf16 reference, writing into a reused flat buffer."""
    monkeypatch.setattr(L, "DENSE_MASK_MAX_CELLS", dense_max)
    buf = torch.full((37 * 60,), float("nan"))
    res = _fused_vs_unfused(torch.float32, True, False, 0, bf16=True, out=buf)
    for kind in ("sampled", "in-batch"):
        for a, r in zip(res[kind, True], res[kind, False], strict=True):
            assert torch.allclose(a, r, rtol=3e-2, atol=3e-2), (kind, (a - r).abs().max())
    assert not torch.isnan(buf).all()  # the buffer was used


def test_equal_pairs_is_every_equal_pair():
    """The sort-merge join finds exactly the pairs a dense comparison finds."""
    g = torch.Generator().manual_seed(3)
    for n_a, n_b, hi in ((50, 40, 7), (1, 30, 3), (30, 1, 3), (20, 20, 1000)):
        a, b = torch.randint(0, hi, (n_a,), generator=g), torch.randint(0, hi, (n_b,), generator=g)
        rows, cols = L.equal_pairs(a, b)
        got = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
        i, j = torch.nonzero(a[:, None] == b[None, :], as_tuple=True)
        want = sorted(zip(i.tolist(), j.tolist(), strict=True))
        assert got == want


def test_fused_loss_refuses_a_second_backward():
    q = torch.randn(4, 3, requires_grad=True)
    V = torch.randn(6, 3)
    pos = torch.tensor([0, 2, 5, 2])
    loss = L.in_batch_loss(q, V[pos], pos, torch.zeros(4))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward twice"):
        loss.backward()
