"""Tests for mtl_cli.tasks.metrics against hand-computed values."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mtl_cli.tasks.metrics import (
    ClassificationMetrics,
    DepthMetrics,
    EdgeMetrics,
    MetricAccumulator,
    MultiLabelMetrics,
    NormalsMetrics,
    SegmentationMetrics,
)

ALL_CLASSES = [
    ClassificationMetrics,
    SegmentationMetrics,
    DepthMetrics,
    NormalsMetrics,
    EdgeMetrics,
    MultiLabelMetrics,
]


def approx(d: dict[str, float], rel: float = 1e-9, abs: float = 1e-12):
    return pytest.approx(d, rel=rel, abs=abs)


def assert_same(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k


# --------------------------------------------------------------------------- #
# data builders
# --------------------------------------------------------------------------- #
def seg_logits(label_map: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B, H, W] class map -> [B, C, H, W] logits whose argmax is the map."""
    return F.one_hot(label_map, num_classes).permute(0, 3, 1, 2).float()


def normal_from_angle(deg: float) -> list[float]:
    """Unit vector at ``deg`` degrees from +z (rotated towards +x)."""
    r = math.radians(deg)
    return [math.sin(r), 0.0, math.cos(r)]


def random_inputs(cls, n: int, gen: torch.Generator):
    """Random (pred, target) of batch ``n`` for each accumulator class."""
    if cls is ClassificationMetrics:
        return torch.randn(n, 5, generator=gen), torch.randint(-1, 5, (n,), generator=gen)
    if cls is SegmentationMetrics:
        return torch.randn(n, 4, 6, 7, generator=gen), torch.randint(-1, 4, (n, 6, 7), generator=gen)
    if cls is DepthMetrics:
        t = torch.rand(n, 1, 6, 7, generator=gen) * 5
        t[t < 1] = 0
        return torch.rand(n, 1, 6, 7, generator=gen) * 5, t
    if cls is NormalsMetrics:
        t = F.normalize(torch.randn(n, 3, 6, 7, generator=gen), dim=1)
        t[:, :, 0, :] = 0
        return torch.randn(n, 3, 6, 7, generator=gen), t
    if cls is EdgeMetrics:
        return torch.randn(n, 1, 8, 9, generator=gen) * 3, (torch.rand(n, 1, 8, 9, generator=gen) > 0.7).float()
    if cls is MultiLabelMetrics:
        t = torch.randint(-1, 2, (n, 4), generator=gen)
        t[0] = 1  # every label has a positive
        return torch.randn(n, 4, generator=gen).round(decimals=1), t  # rounding -> ties
    raise AssertionError(cls)


def make(cls) -> MetricAccumulator:
    if cls is ClassificationMetrics:
        return cls(5)
    if cls is SegmentationMetrics:
        return cls(4)
    if cls is MultiLabelMetrics:
        return cls(4)
    return cls()


# --------------------------------------------------------------------------- #
# classification
# --------------------------------------------------------------------------- #
def test_classification_hand():
    pred = torch.tensor(
        [
            [2.0, 1.0, 0.0],  # argmax 0, target 0 -> correct
            [0.0, 1.0, 3.0],  # argmax 2, target 2 -> correct
            [5.0, 1.0, 0.0],  # argmax 0, target 1 -> wrong
            [0.0, 9.0, 0.0],  # target -1 -> ignored
        ]
    )
    target = torch.tensor([0, 2, 1, -1])
    m = ClassificationMetrics(3)
    m.update(pred, target)
    assert m.compute() == approx({"accuracy": 2 / 3})
    # per-sample valid: drop sample 2 (the wrong one) -> 2 / 2
    m.reset()
    m.update(pred, target, valid=torch.tensor([True, True, False, True]))
    assert m.compute() == approx({"accuracy": 1.0})
    assert isinstance(m.compute()["accuracy"], float)


# --------------------------------------------------------------------------- #
# segmentation
# --------------------------------------------------------------------------- #
def test_segmentation_hand():
    # target            pred (argmax)
    # 0 0 1             0 0 1
    # 1 2 2             2 2 2
    # confusion (rows = target, cols = pred):
    #   t0: [2, 0, 0]   t1: [0, 1, 1]   t2: [0, 0, 2]
    # IoU0 = 2 / (2 + 0 + 0) = 1
    # IoU1 = 1 / (1 + 0 + 1) = 1/2
    # IoU2 = 2 / (2 + 1 + 0) = 2/3
    # mIoU = (1 + 1/2 + 2/3) / 3 = 13/18 ; pixel acc = 5/6
    target = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pmap = torch.tensor([[[0, 0, 1], [2, 2, 2]]])
    m = SegmentationMetrics(3)
    m.update(seg_logits(pmap, 3), target)
    assert m.compute() == approx({"miou": 13 / 18, "pixel_accuracy": 5 / 6})
    assert m.confusion.tolist() == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]

    # class 3 absent from both target and prediction: excluded from the mean
    m4 = SegmentationMetrics(4)
    m4.update(seg_logits(pmap, 4), target)
    assert m4.compute() == approx({"miou": 13 / 18, "pixel_accuracy": 5 / 6})

    # a class that appears only in the prediction counts with IoU 0:
    # predict class 3 at pixel (0,0) -> t0: TP 1, FN 1 -> IoU0 = 1/2; IoU3 = 0/1
    # mIoU = (1/2 + 1/2 + 2/3 + 0) / 4 = 5/12 ; pixel acc = 4/6
    pmap3 = pmap.clone()
    pmap3[0, 0, 0] = 3
    m4.reset()
    m4.update(seg_logits(pmap3, 4), target)
    assert m4.compute() == approx({"miou": 5 / 12, "pixel_accuracy": 4 / 6})


def test_segmentation_ignore_and_valid():
    target = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pmap = torch.tensor([[[0, 0, 1], [2, 2, 2]]])
    # ignore the (1,0) pixel (t1 -> p2, the only error in class 1 row) with
    # ignore_index and a second pixel with an out-of-range label (255):
    # remaining confusion t0:[1,0,0] (pixel (0,1) is 255) t1:[0,1,0] t2:[0,0,2]
    # -> all IoU 1, acc 4/4
    t = target.clone()
    t[0, 1, 0] = -1
    t[0, 0, 1] = 255
    m = SegmentationMetrics(3, ignore_index=-1)
    m.update(seg_logits(pmap, 3), t)
    assert m.compute() == approx({"miou": 1.0, "pixel_accuracy": 1.0})
    # custom ignore_index=255, with -1 still outside [0, C) -> same result
    m = SegmentationMetrics(3, ignore_index=255)
    m.update(seg_logits(pmap, 3), t)
    assert m.compute() == approx({"miou": 1.0, "pixel_accuracy": 1.0})

    # per-sample valid: a second, all-wrong sample is skipped entirely
    target2 = torch.cat([target, torch.zeros_like(target)])
    pmap2 = torch.cat([pmap, torch.ones_like(pmap)])
    m = SegmentationMetrics(3)
    m.update(seg_logits(pmap2, 3), target2, valid=torch.tensor([True, False]))
    assert m.compute() == approx({"miou": 13 / 18, "pixel_accuracy": 5 / 6})
    # [B, 1, H, W] target accepted
    m.reset()
    m.update(seg_logits(pmap, 3), target[:, None])
    assert m.compute() == approx({"miou": 13 / 18, "pixel_accuracy": 5 / 6})


# --------------------------------------------------------------------------- #
# depth
# --------------------------------------------------------------------------- #
def test_depth_hand():
    # valid pixels: (p=1,t=2) (p=3,t=1) (p=4,t=4); t=0 and t=nan are invalid
    # abs = (1 + 2 + 0) / 3 = 1 ; rel = (1/2 + 2/1 + 0/4) / 3 = 5/6
    pred = torch.tensor([[[[1.0, 2.0, 7.0], [3.0, 4.0, 0.0]]]])
    target = torch.tensor([[[[2.0, 0.0, float("nan")], [1.0, 4.0, 0.0]]]])
    m = DepthMetrics()
    m.update(pred, target)
    assert m.compute() == approx({"abs_err": 1.0, "rel_err": 5 / 6})

    # pixel-weighted over the dataset, not mean of per-image means:
    # second image: one valid pixel (p=10, t=5): abs 5, rel 1
    # abs = (3 + 5) / 4 = 2 ; rel = (2.5 + 1) / 4 = 7/8
    pred2 = torch.tensor([[[[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    target2 = torch.tensor([[[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    m.update(pred2, target2)
    assert m.compute() == approx({"abs_err": 2.0, "rel_err": 7 / 8})

    # valid mask drops the second sample of a combined batch
    m.reset()
    m.update(torch.cat([pred, pred2]), torch.cat([target, target2]), valid=torch.tensor([True, False]))
    assert m.compute() == approx({"abs_err": 1.0, "rel_err": 5 / 6})


# --------------------------------------------------------------------------- #
# normals
# --------------------------------------------------------------------------- #
def test_normals_hand():
    # target +z everywhere except one all-zero (invalid) pixel; predictions at
    # 0, 20, 25, 45, 90 degrees (non-unit scaled) -> angles [0, 20, 25, 45, 90]
    # mean = 180/5 = 36 ; median = 25
    # within 11.25 = 1/5 ; 22.5 = 2/5 ; 30 = 3/5
    scales = [5.0, 1.0, 2.0, 0.5, 3.0, 1.0]
    angles = [0.0, 20.0, 25.0, 45.0, 90.0, 170.0]
    pred = torch.tensor([[s * c for c in normal_from_angle(a)] for s, a in zip(scales, angles)])
    target = torch.tensor([[0.0, 0.0, 1.0]] * 5 + [[0.0, 0.0, 0.0]])
    pred = pred.T.reshape(1, 3, 2, 3)
    target = target.T.reshape(1, 3, 2, 3)
    m = NormalsMetrics()
    m.update(pred, target)
    out = m.compute()
    assert out["mean_angle"] == pytest.approx(36.0, abs=1e-5)  # float32 inputs
    assert out["median_angle"] == pytest.approx(25.0, abs=0.005 + 1e-5)
    assert {k: out[k] for k in ("within_11.25", "within_22.5", "within_30")} == approx(
        {"within_11.25": 1 / 5, "within_22.5": 2 / 5, "within_30": 3 / 5}
    )
    # opposite vectors: cosine clamped, 180 degrees lands in the last bin
    m.reset()
    m.update(torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1, 1), torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1))
    out = m.compute()
    assert out["mean_angle"] == pytest.approx(180.0)
    assert out["median_angle"] == pytest.approx(180.0, abs=0.005 + 1e-9)


def test_normals_median_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 3, 20, 20, generator=gen)
    target = F.normalize(torch.randn(3, 3, 20, 20, generator=gen), dim=1)
    target[:, :, :3] = 0  # invalid rows
    m = NormalsMetrics()
    m.update(pred[:2], target[:2])
    m.update(pred[2:], target[2:])
    out = m.compute()

    p = pred.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    t = target.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    keep = np.any(t != 0, axis=1)
    p, t = p[keep], t[keep]
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    ang = np.degrees(np.arccos(np.clip((p * t).sum(1), -1, 1)))
    assert ang.size % 2 == 0  # exercises the two-middle-values case
    assert out["median_angle"] == pytest.approx(np.median(ang), abs=0.005 + 1e-9)
    # the accumulator re-normalises the float32 targets -> ~1e-9 relative noise
    assert out["mean_angle"] == pytest.approx(ang.mean(), rel=1e-7)
    assert out["within_22.5"] == pytest.approx((ang < 22.5).mean(), rel=1e-12)
    # odd count
    m.reset()
    m.update(pred[:1, :, 3:, :1], target[:1, :, 3:, :1])
    pp = F.normalize(pred[0, :, 3:, 0].T.double(), dim=1).numpy()
    tt = target[0, :, 3:, 0].T.double().numpy()
    ang_odd = np.degrees(np.arccos(np.clip((pp * tt).sum(1), -1, 1)))
    assert ang_odd.size == 17
    assert m.compute()["median_angle"] == pytest.approx(np.median(ang_odd), abs=0.005 + 1e-9)


def test_normals_valid_mask():
    t = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).repeat(2, 1, 2, 2)
    p = t.clone()
    p[1] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # 90 degrees everywhere
    m = NormalsMetrics()
    m.update(p, t, valid=torch.tensor([True, False]))
    out = m.compute()
    assert out["mean_angle"] == pytest.approx(0.0, abs=1e-6)
    assert out["within_11.25"] == 1.0
    assert int(m.count) == 4


# --------------------------------------------------------------------------- #
# edges
# --------------------------------------------------------------------------- #
def edge_example():
    """5x5 example.  GT = column 2.  Pred = column 3 rows 0-3, (2,2) and (4,0).

    GT          pred
    . . X . .   . . . P .
    . . X . .   . . . P .
    . . X . .   . . P P .
    . . X . .   . . . P .
    . . X . .   P . . . .
    """
    gt = torch.zeros(1, 1, 5, 5)
    gt[0, 0, :, 2] = 1
    logit = torch.full((1, 1, 5, 5), -4.0)  # sigmoid = 0.018
    logit[0, 0, 0:4, 3] = 4.0  # sigmoid = 0.982
    logit[0, 0, 2, 2] = 4.0
    logit[0, 0, 4, 0] = 4.0
    return logit, gt


def test_edge_tolerance_hand():
    logit, gt = edge_example()
    # thresholds 0.01..0.99: at 0.01 every pixel is predicted, 0.02..0.98 the
    # 6 P pixels, at 0.99 nothing.
    #
    # tolerance 0 (exact):
    #   th=0.5 : matched_pred = 1 ((2,2)), P = 1/6 ; matched_gt = 1, R = 1/5
    #            F = 2 (1/6)(1/5) / (1/6 + 1/5) = 2/11
    #   th=0.01: P = 5/25, R = 1 -> F = 2*0.2/1.2 = 1/3   (best -> ODS)
    m0 = EdgeMetrics(tolerance=0)
    m0.update(logit, gt)
    assert m0.compute() == approx({"ods_f": 1 / 3, "f1": 2 / 11})
    #
    # tolerance 1 (Chebyshev): column-3 preds and (2,2) touch the GT, (4,0)
    # is 2 away -> matched_pred = 5 of 6; every GT pixel has a pred within 1
    # ((4,2) via diagonal (3,3)) -> R = 1
    #   th=0.5 : P = 5/6, R = 1 -> F = 2 (5/6) / (11/6) = 10/11  (best)
    #   th=0.01: P = 15/25 (columns 1-3), R = 1 -> F = 0.75
    m1 = EdgeMetrics(tolerance=1)
    m1.update(logit, gt)
    assert m1.compute() == approx({"ods_f": 10 / 11, "f1": 10 / 11})

    # the full per-threshold F curve, tolerance 1
    f = m1._f_per_threshold()
    assert f[0] == pytest.approx(0.75)
    assert torch.allclose(f[1:98], torch.full((97,), 10 / 11, dtype=torch.float64))
    assert f[98] == 0.0


def test_edge_threshold_grid_and_valid():
    logit, gt = edge_example()
    # even number of thresholds (0.5 not in the grid): f1 still at 0.5
    m = EdgeMetrics(thresholds=4, tolerance=0)  # 0.2, 0.4, 0.6, 0.8
    m.update(logit, gt)
    assert m.compute() == approx({"ods_f": 2 / 11, "f1": 2 / 11})
    m = EdgeMetrics(thresholds=[0.01], tolerance=0)
    m.update(logit, gt)
    assert m.compute() == approx({"ods_f": 1 / 3, "f1": 2 / 11})

    # second sample: all predicted, no GT -> would add 25 FPs at every th
    batch_logit = torch.cat([logit, torch.full_like(logit, 4.0)])
    batch_gt = torch.cat([gt, torch.zeros_like(gt)])
    m = EdgeMetrics(tolerance=1)
    m.update(batch_logit, batch_gt, valid=torch.tensor([True, False]))
    assert m.compute() == approx({"ods_f": 10 / 11, "f1": 10 / 11})
    m.reset()
    m.update(batch_logit, batch_gt)
    # th=0.5: P = 5/31, R = 1 -> F = 2 (5/31) / (36/31) = 10/36
    assert m.compute()["f1"] == pytest.approx(10 / 36)


def test_edge_matches_bruteforce():
    gen = torch.Generator().manual_seed(1)
    logit = torch.randn(2, 1, 7, 8, generator=gen) * 2
    gt = (torch.rand(2, 1, 7, 8, generator=gen) > 0.8).float()
    ths = [0.1, 0.3, 0.5, 0.7, 0.9]
    for tol in (0, 1, 2):
        m = EdgeMetrics(thresholds=ths, tolerance=tol)
        m.update(logit, gt)
        prob = torch.sigmoid(logit)[:, 0].numpy()
        g = gt[:, 0].numpy() > 0.5
        fs = {}
        for th in ths:
            pe = prob >= np.float32(th)
            mp = mg = 0
            for b in range(2):
                for i in range(7):
                    for j in range(8):
                        win = (b, slice(max(i - tol, 0), i + tol + 1), slice(max(j - tol, 0), j + tol + 1))
                        if pe[b, i, j] and g[win].any():
                            mp += 1
                        if g[b, i, j] and pe[win].any():
                            mg += 1
            p = mp / pe.sum() if pe.sum() else 0.0
            r = mg / g.sum()
            fs[th] = 2 * p * r / (p + r) if p + r else 0.0
        assert m.compute() == approx({"ods_f": max(fs.values()), "f1": fs[0.5]})


# --------------------------------------------------------------------------- #
# multi-label
# --------------------------------------------------------------------------- #
def brute_force_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP = mean over positives i of #{pos j: s_j >= s_i} / #{j: s_j >= s_i}."""
    precs = []
    for i in np.flatnonzero(labels == 1):
        above = scores >= scores[i]
        precs.append((above & (labels == 1)).sum() / above.sum())
    return float(np.mean(precs))


def test_multilabel_hand():
    # label 0: scores [3, 1, -1, 2], targets [1, 0, 1, 0]
    #   ranking 3(+) 2(-) 1(-) -1(+) -> AP = (1/1 + 2/4) / 2 = 3/4
    #   pred>=0.5: [1, 1, 0, 1] -> correct only sample 0 -> acc 1/4
    # label 1: scores [0.5, -2, 1, -0.5], targets [1, ?, 0, 1]
    #   ranking 1(-) 0.5(+) -0.5(+) -> AP = (1/2 + 2/3) / 2 = 7/12
    #   known preds [1, 1, 0] vs [1, 0, 1] -> acc 1/3
    # label 2: no positive -> excluded from mAP; preds [0,0,0,1] vs 0 -> acc 3/4
    # map = (3/4 + 7/12) / 2 = 2/3 ; mean_acc = (1/4 + 1/3 + 3/4) / 3 = 4/9
    pred = torch.tensor([[3.0, 0.5, -1.0], [1.0, -2.0, -1.0], [-1.0, 1.0, -1.0], [2.0, -0.5, 1.0]])
    target = torch.tensor([[1, 1, 0], [0, -1, 0], [1, 0, 0], [0, 1, 0]])
    m = MultiLabelMetrics(3)
    m.update(pred, target)
    assert m.compute() == approx({"mean_accuracy": 4 / 9, "map": 2 / 3})

    # same via two batches
    m.reset()
    m.update(pred[:1], target[:1])
    m.update(pred[1:], target[1:])
    assert m.compute() == approx({"mean_accuracy": 4 / 9, "map": 2 / 3})

    # valid mask: drop sample 3 -> label0: 3(+) 1(-) -1(+) AP = (1 + 2/3)/2 = 5/6,
    # acc [✓ ✗ ✗] = 1/3 ; label1: 1(-) 0.5(+) AP = 1/2, acc [✓ ✗] = 1/2 ;
    # label2 acc 3/3.  map = (5/6 + 1/2)/2 = 2/3 ; mean_acc = (1/3 + 1/2 + 1)/3 = 11/18
    m.reset()
    m.update(pred, target, valid=torch.tensor([True, True, True, False]))
    assert m.compute() == approx({"mean_accuracy": 11 / 18, "map": 2 / 3})


def test_multilabel_ties_order_independent():
    # tie at score 1 between a positive and a negative: the positive's
    # precision is taken at the end of the tie group -> 1/2; AP = (1/2 + 2/3)/2
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):
        s = torch.tensor([1.0, 1.0, 0.0])[order].view(-1, 1)
        t = torch.tensor([1, 0, 1])[order].view(-1, 1)
        m = MultiLabelMetrics(1)
        m.update(s, t)
        assert m.compute()["map"] == pytest.approx(7 / 12)


def test_multilabel_ap_matches_bruteforce():
    gen = torch.Generator().manual_seed(2)
    n, L = 60, 5
    scores = (torch.randn(n, L, generator=gen) * 2).round()  # many ties
    target = torch.randint(-1, 2, (n, L), generator=gen)
    target[:, 4] = torch.where(target[:, 4] == 1, 0, target[:, 4])  # label 4: no positive
    m = MultiLabelMetrics(L)
    for chunk in range(0, n, 16):
        m.update(scores[chunk : chunk + 16], target[chunk : chunk + 16])
    out = m.compute()

    aps, accs = [], []
    for j in range(L):
        k = (target[:, j] >= 0).numpy()
        s, y = scores[:, j].numpy()[k], target[:, j].numpy()[k]
        accs.append(((1 / (1 + np.exp(-s)) >= 0.5) == (y == 1)).mean())
        if (y == 1).any():
            aps.append(brute_force_ap(s, y))
    assert len(aps) == 4
    assert out == approx({"mean_accuracy": float(np.mean(accs)), "map": float(np.mean(aps))})


# --------------------------------------------------------------------------- #
# generic behaviour
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_two_batches_equal_one(cls):
    gen = torch.Generator().manual_seed(3)
    pred, target = random_inputs(cls, 6, gen)
    whole = make(cls)
    whole.update(pred, target)
    split = make(cls)
    split.update(pred[:2], target[:2])
    split.update(pred[2:], target[2:])
    assert_same(whole.compute(), split.compute())
    assert set(whole.compute()) == set(cls.higher_is_better)
    assert all(type(v) is float for v in whole.compute().values())


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_valid_mask_equals_dropping_samples(cls):
    gen = torch.Generator().manual_seed(4)
    pred, target = random_inputs(cls, 5, gen)
    valid = torch.tensor([True, False, True, True, False])
    masked = make(cls)
    masked.update(pred, target, valid=valid)
    dropped = make(cls)
    dropped.update(pred[valid], target[valid])
    assert_same(masked.compute(), dropped.compute())


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_reset_and_sync_noop(cls):
    gen = torch.Generator().manual_seed(5)
    a = make(cls)
    assert all(math.isnan(v) for v in a.compute().values())  # nothing seen yet
    pred1, target1 = random_inputs(cls, 3, gen)
    pred2, target2 = random_inputs(cls, 3, gen)
    a.update(pred1, target1)
    a.reset()
    assert all(math.isnan(v) for v in a.compute().values())
    a.update(pred2, target2)
    b = make(cls)
    b.update(pred2, target2)
    before = a.compute()
    assert not dist.is_initialized()
    a.sync()  # no process group: no-op
    assert_same(before, a.compute())
    assert_same(before, b.compute())


def test_higher_is_better_directions():
    assert ClassificationMetrics.higher_is_better == {"accuracy": True}
    assert SegmentationMetrics.higher_is_better == {"miou": True, "pixel_accuracy": True}
    assert DepthMetrics.higher_is_better == {"abs_err": False, "rel_err": False}
    assert NormalsMetrics.higher_is_better == {
        "mean_angle": False,
        "median_angle": False,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
    }
    assert EdgeMetrics.higher_is_better == {"ods_f": True, "f1": True}
    assert MultiLabelMetrics.higher_is_better == {"mean_accuracy": True, "map": True}


def test_state_follows_first_update_device_and_dtype():
    m = SegmentationMetrics(3)
    assert m.confusion is None  # lazily created
    m.update(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    assert m.confusion.device.type == "cpu" and m.confusion.dtype == torch.int64
    n = NormalsMetrics()
    assert n.num_bins == 18000
    n.update(torch.randn(1, 3, 2, 2), F.normalize(torch.randn(1, 3, 2, 2), dim=1))
    assert n.hist.dtype == torch.int64 and n.angle_sum.dtype == torch.float64


# --------------------------------------------------------------------------- #
# distributed: 2 gloo ranks == 1 process
# --------------------------------------------------------------------------- #
def _ddp_worker(rank: int, world: int, init_file: str, queue) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        gen = torch.Generator().manual_seed(6)
        results = {}
        for cls in ALL_CLASSES:
            pred, target = random_inputs(cls, 7, gen)
            valid = torch.tensor([True, True, False, True, True, True, False])
            m = make(cls)
            # uneven split: rank 0 gets samples 0-1, rank 1 gets 2-6
            sl = slice(0, 2) if rank == 0 else slice(2, 7)
            m.update(pred[sl], target[sl], valid=valid[sl])
            m.sync()
            m.sync()  # second sync without update: no-op
            results[cls.__name__] = m.compute()
        # a rank without any update still takes part (lazy zero state)
        m = MultiLabelMetrics(2)
        if rank == 1:
            m.update(torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.tensor([[1, 0], [0, 1]]))
        m.sync()
        results["empty_rank"] = m.compute()
        # update after sync, then sync again, would double count -> refused
        m.update(torch.zeros(1, 2), torch.ones(1, 2))
        try:
            m.sync()
            results["resync_raises"] = False
        except RuntimeError:
            results["resync_raises"] = True
        queue.put((rank, results))
        dist.destroy_process_group()
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put((rank, repr(exc)))


def test_ddp_two_ranks_equal_single_process():
    import multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    # fork keeps this test ~0.1 s (spawn re-imports torch: several seconds)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        procs = [ctx.Process(target=_ddp_worker, args=(r, 2, init_file, queue)) for r in range(2)]
        try:
            for p in procs:
                p.start()
            got = dict(queue.get(timeout=60) for _ in procs)
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
    for r in (0, 1):
        assert isinstance(got[r], dict), got[r]

    gen = torch.Generator().manual_seed(6)
    for cls in ALL_CLASSES:
        pred, target = random_inputs(cls, 7, gen)
        valid = torch.tensor([True, True, False, True, True, True, False])
        m = make(cls)
        m.update(pred, target, valid=valid)
        expected = m.compute()
        for r in (0, 1):
            assert_same(got[r][cls.__name__], expected)
    single = MultiLabelMetrics(2)
    single.update(torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.tensor([[1, 0], [0, 1]]))
    for r in (0, 1):
        assert_same(got[r]["empty_rank"], single.compute())
        assert got[r]["resync_raises"] is True
