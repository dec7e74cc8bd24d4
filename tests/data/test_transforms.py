"""Joint transforms: geometry shared by image and dense targets, normals flip, depth scaling, seeding."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from mtl_cli.data.transforms import (
    Augment,
    AugmentSeedSampler,
    JointTransform,
    TransformedDataset,
    resize_sample,
)
from mtl_cli.tasks import TASK_KINDS
from mtl_cli.tasks.labels import LabelSpec

H, W = 24, 32
SPECS = {
    "seg": LabelSpec("seg", TASK_KINDS["seg"], num_classes=13, ignore_index=-1),
    "depth": LabelSpec("depth", TASK_KINDS["depth"]),
    "normals": LabelSpec("normals", TASK_KINDS["normals"]),
    "edges": LabelSpec("edges", TASK_KINDS["edges"]),
    "cls": LabelSpec("cls", TASK_KINDS["cls"], num_classes=3),
}
ZERO_MEAN, UNIT_STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]


def sphere_item() -> dict:
    """A Lambertian sphere filling most of the view: exact unit normals inside the disc, invalid (0) outside."""
    u = (torch.arange(W) + 0.5) / W * 2 - 1
    v = 1 - (torch.arange(H) + 0.5) / H * 2
    uu, vv = u.view(1, W).expand(H, W), v.view(H, 1).expand(H, W)
    r2 = uu**2 + vv**2
    inside = r2 < 0.9
    normals = torch.stack([uu, vv, (1 - r2).clamp_min(0).sqrt()]) * inside
    light = torch.tensor([-0.5, 0.3, 1.0]) / math.sqrt(1.34)  # lit from the upper left: not mirror-symmetric
    image = (0.2 + 0.8 * (normals * light.view(3, 1, 1)).sum(0).clamp_min(0)).expand(3, H, W).clone()
    seg = torch.where(inside, torch.where(uu < 0, 1, 2), -1).long()
    depth = torch.where(inside, 3.0 - normals[2], torch.zeros(())).unsqueeze(0)
    edges = (inside != inside.roll(1, dims=1)).float().unsqueeze(0)
    return {"image": image, "seg": seg, "depth": depth, "normals": normals, "edges": edges, "cls": torch.tensor(2)}


def blocks_item() -> dict:
    """Piecewise-constant scene: class blocks, an ignore block, matching invalid depth / normals."""
    seg = torch.zeros(H, W, dtype=torch.long)
    seg[:, 8:16], seg[:, 16:24], seg[:, 24:] = 5, 9, 12
    seg[:12, :12] = -1
    invalid = seg < 0
    depth = torch.where(invalid, 0.0, 4.0).unsqueeze(0)
    tilt = torch.tensor([0.6, 0.0, 0.8]).view(3, 1, 1).expand(3, H, W)
    normals = tilt * ~invalid
    image = (seg.clamp_min(0).float() / 12.0).expand(3, H, W).clone()
    edges = torch.zeros(1, H, W)
    edges[:, :, 15:17] = 1.0
    return {"image": image, "seg": seg, "depth": depth, "normals": normals, "edges": edges, "cls": torch.tensor(1)}


def transform(**augment) -> JointTransform:
    return JointTransform(SPECS, Augment(**augment), ZERO_MEAN, UNIT_STD)


def run(t: JointTransform, item: dict, seed: int) -> dict:
    return t({k: v.clone() for k, v in item.items()}, torch.Generator().manual_seed(seed))


def flipped_seeds(t: JointTransform, item: dict, n: int = 16) -> tuple[list[int], list[int]]:
    """Seeds whose augmentation flips the scene and seeds that keep it (told apart by the image)."""
    flips, keeps = [], []
    for seed in range(n):
        out = run(t, item, seed)
        if torch.equal(out["image"], item["image"].flip(-1)):
            flips.append(seed)
        else:
            assert torch.equal(out["image"], item["image"])
            keeps.append(seed)
    return flips, keeps


def test_flipping_a_sphere_gives_the_sphere_normals_with_x_negated():
    item = sphere_item()
    t = transform(hflip=True)
    flips, keeps = flipped_seeds(t, item)
    assert flips and keeps  # a fair coin over 16 seeds
    for seed in flips:
        out = run(t, item, seed)
        mirrored = item["normals"].flip(-1)
        assert torch.equal(out["normals"][0], -mirrored[0])
        assert torch.equal(out["normals"][1:], mirrored[1:])
        # the mirror image of a sphere is the same sphere: its normals come out unchanged
        assert torch.allclose(out["normals"], item["normals"], atol=1e-6)
        assert torch.equal(out["seg"], item["seg"].flip(-1))
        assert torch.equal(out["depth"], item["depth"].flip(-1))
        assert torch.equal(out["cls"], item["cls"])


def test_flipping_a_slanted_plane_negates_the_normal_x():
    item = blocks_item()
    t = transform(hflip=True)
    flips, _ = flipped_seeds(t, item)
    out = run(t, item, flips[0])
    valid = out["normals"].abs().sum(0) > 0
    assert valid.sum() == (~(item["seg"] < 0)).sum()
    assert torch.allclose(out["normals"][:, valid], torch.tensor([[-0.6], [0.0], [0.8]]).expand(3, int(valid.sum())))


@pytest.mark.parametrize("seed", range(6))
def test_scale_crop_keeps_labels_integral_and_ignore_aligned(seed):
    item = blocks_item()
    out = run(transform(scale=(1.3, 2.0)), item, seed)
    seg = out["seg"]
    assert seg.dtype == torch.int64 and seg.shape == (H, W)
    assert set(seg.unique().tolist()) <= {-1, 0, 5, 9, 12}
    ignore = seg == -1
    # nearest sampling shared by every target: ignore, invalid depth and invalid normals coincide
    assert torch.equal(ignore, out["depth"][0] == 0)
    assert torch.equal(ignore, out["normals"].abs().sum(0) == 0)
    valid = ~ignore
    assert torch.allclose(out["normals"][:, valid].norm(dim=0), torch.ones(int(valid.sum())), atol=1e-5)
    assert set(out["edges"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out["cls"], item["cls"])


def test_scale_crop_keeps_the_ignore_value_of_the_dataset():
    specs = {"seg": LabelSpec("seg", TASK_KINDS["seg"], num_classes=4, ignore_index=255)}
    seg = torch.randint(0, 4, (H, W))
    seg[5:15, 3:20] = 255
    t = JointTransform(specs, Augment(scale=(1.5, 1.5)), ZERO_MEAN, UNIT_STD)
    out = t({"image": torch.rand(3, H, W), "seg": seg}, torch.Generator().manual_seed(3))
    assert set(out["seg"].unique().tolist()) <= set(range(4)) | {255}
    assert (out["seg"] == 255).any()


@pytest.mark.parametrize("scale", [1.25, 1.6, 2.0])
def test_depth_is_divided_by_the_zoom_and_inverse_depth_multiplied(scale):
    item = blocks_item()
    out = run(transform(scale=(scale, scale)), item, 0)
    depth = out["depth"][0]
    assert torch.allclose(depth[depth > 0], torch.tensor(4.0 / scale))
    inverse = dict(SPECS, depth=LabelSpec("depth", TASK_KINDS["depth"], options={"inverse": True}))
    out = JointTransform(inverse, Augment(scale=(scale, scale)), ZERO_MEAN, UNIT_STD)(
        {k: v.clone() for k, v in item.items()}, torch.Generator().manual_seed(0)
    )
    depth = out["depth"][0]
    assert torch.allclose(depth[depth > 0], torch.tensor(4.0 * scale))


@pytest.mark.parametrize("seed", range(4))
def test_image_and_labels_stay_aligned(seed):
    item = blocks_item()
    out = run(transform(scale=(1.2, 1.8), hflip=True), item, seed)
    seg = out["seg"]
    # away from class borders the image (class / 12) still reads the label under it
    pad = torch.nn.functional.pad(seg[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
    same = torch.ones_like(seg, dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            same &= pad[dy : dy + H, dx : dx + W] == seg
    interior = same & (seg >= 0)
    assert interior.sum() > 50
    assert torch.allclose(out["image"][0][interior] * 12, seg[interior].float(), atol=1e-4)


def test_same_seed_same_augmentation_other_seed_differs():
    item = sphere_item()
    t = transform(scale=(1.0, 1.8), hflip=True, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05)
    a, b, c = run(t, item, 7), run(t, item, 7), run(t, item, 8)
    for key in item:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["image"], c["image"])


def test_photometric_jitter_changes_the_image_only():
    item = blocks_item()
    item["image"] = torch.rand(3, H, W)
    out = run(transform(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), item, 5)
    assert not torch.allclose(out["image"], item["image"])
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    for key in ("seg", "depth", "normals", "edges", "cls"):
        assert torch.equal(out[key], item[key]), key


def test_normalisation_uses_the_dataset_statistics():
    item = blocks_item()
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = JointTransform(SPECS, Augment(), mean, std)(dict(item))
    expected = (item["image"] - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(out["image"], expected)
    assert torch.equal(out["seg"], item["seg"])


def test_resize_keeps_depth_values_labels_integral_normals_unit():
    item = sphere_item()
    out = resize_sample(item, SPECS, (12, 20))
    assert out["image"].shape == (3, 12, 20) and out["seg"].shape == (12, 20)
    assert set(out["seg"].unique().tolist()) <= {-1, 1, 2}
    valid = out["depth"][0] > 0
    assert out["depth"][0][valid].min() >= item["depth"][0][item["depth"][0] > 0].min() - 1e-6
    norms = out["normals"].norm(dim=0)
    assert torch.allclose(norms[valid], torch.ones(int(valid.sum())), atol=1e-5)
    assert torch.equal(norms == 0, ~valid)


class _Items(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> dict:
        item = blocks_item()
        item["image"] = item["image"] * (index + 1) / 12
        return item


def _epoch(num_workers: int, seed: int) -> list[torch.Tensor]:
    t = transform(scale=(1.0, 2.0), hflip=True, brightness=0.2)
    data = TransformedDataset(_Items(), t, augment=True)
    sampler = AugmentSeedSampler(SequentialSampler(data), len(data), seed)
    loader = DataLoader(data, batch_size=4, sampler=sampler, num_workers=num_workers)
    return [batch["image"] for batch in loader]


def test_augmentations_depend_on_the_seed_not_on_the_workers():
    serial = _epoch(0, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(serial, _epoch(2, seed=11)))
    assert not all(torch.equal(a, b) for a, b in zip(serial, _epoch(0, seed=12)))


def test_validation_and_plain_indices_are_not_augmented():
    t = transform(scale=(1.5, 2.0), hflip=True, brightness=0.5)
    train = TransformedDataset(_Items(), t, augment=True)
    val = TransformedDataset(_Items(), t, augment=False)
    plain = _Items()[3]["image"]
    assert torch.equal(val[(3, 99)]["image"], plain)
    assert torch.equal(train[3]["image"], plain)
    assert not torch.equal(train[(3, 99)]["image"], plain)
    assert math.isclose(len(train), 12)


def test_augment_seeds_do_not_depend_on_sharding():
    data = list(range(10))
    whole = AugmentSeedSampler(SequentialSampler(data), len(data), seed=5)
    halves = [AugmentSeedSampler(list(range(r, 10, 2)), len(data), seed=5) for r in range(2)]  # type: ignore[arg-type]
    for sampler in (whole, *halves):
        sampler.set_epoch(3)
    pairs = dict(whole)
    assert all(pairs[i] == s for half in halves for i, s in half)
    whole.set_epoch(4)
    assert dict(whole) != pairs
