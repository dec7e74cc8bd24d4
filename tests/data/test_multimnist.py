"""MultiMNIST from real handwritten digits: placement, labels, mask, determinism, MNIST source."""

from __future__ import annotations

import pytest
import torch
from data_helpers import build, compose_cfg
from data_layouts import write_mnist

from mtl_cli.data.multimnist import CANVAS, DIGIT, MAX_SHIFT, compose_pairs
from mtl_cli.errors import UserError

TASKS = ["data=multimnist", "task=left+mask+right", "data.num_train=64", "data.num_val=16"]


def solid_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Ten "digits" that fill their 28x28 square with an intensity that encodes their label."""
    labels = torch.arange(10)
    return (0.5 + 0.05 * labels.float()).view(10, 1, 1).expand(10, DIGIT, DIGIT).clone(), labels


def test_left_digit_top_left_right_digit_bottom_right():
    digits, labels = solid_digits()
    out = compose_pairs(digits, labels, 200, seed=3, size=CANVAS)
    inner = MAX_SHIFT + 2  # covered by the left digit only, whatever the shifts
    image, mask = out["image"][:, 0], out["mask"]
    assert torch.allclose(image[:, inner, inner], 0.5 + 0.05 * out["left"].float())
    assert torch.allclose(image[:, -inner, -inner], 0.5 + 0.05 * out["right"].float())
    assert (mask[:, inner, inner] == 1).all() and (mask[:, -inner, -inner] == 2).all()
    assert (mask[:, 0, -1] == 0).all() and (mask[:, -1, 0] == 0).all()  # corners nobody covers
    centre = CANVAS // 2  # overlap: the brighter digit owns the pixel
    brighter_left = out["left"] >= out["right"]
    assert torch.equal(mask[:, centre, centre] == 1, brighter_left)
    assert torch.allclose(image[:, centre, centre], 0.5 + 0.05 * torch.maximum(out["left"], out["right"]).float())
    assert len(set(out["left"].tolist())) == 10


def test_mask_marks_the_bright_pixels():
    train, _ = build(*TASKS)
    arrays = train.base
    image, mask = arrays.image[:, 0], arrays.targets["mask"]
    assert torch.equal(mask > 0, image >= 0.5)
    # on the 36-pixel canvas the left digit never reaches column/row 30, the right never starts before 6;
    # scaled to 28 pixels (antialiased, +-1 pixel) left pixels stay within 0..24, right ones within 3..27
    rows = torch.arange(28).view(1, 28, 1).expand_as(mask)
    cols = torch.arange(28).view(1, 1, 28).expand_as(mask)
    for owner, low, high in ((1, 0, 24), (2, 3, 27)):
        mine = mask == owner
        assert mine.any()
        for coord in (rows, cols):
            assert coord[mine].min() >= low and coord[mine].max() <= high


def test_items_shapes_dtypes_and_real_digit_labels():
    train, val = build(*TASKS)
    assert (len(train), len(val)) == (64, 16)
    item = train[0]
    assert set(item) == {"image", "left", "right", "mask"}
    assert item["image"].shape == (3, 28, 28) and item["image"].dtype == torch.float32
    assert item["left"].dtype == torch.int64 and item["left"].shape == ()
    assert item["mask"].dtype == torch.int64 and set(item["mask"].unique().tolist()) <= {0, 1, 2}
    lefts = torch.stack([train[i]["left"] for i in range(64)])
    assert len(set(lefts.tolist())) >= 8  # real digits of every class


@pytest.mark.slow
def test_deterministic_in_the_seed():
    a, _ = build(*TASKS)
    b, _ = build(*TASKS)
    c, _ = build(*TASKS, "data.seed=1")
    assert torch.equal(a.base.image, b.base.image) and torch.equal(a.base.targets["left"], b.base.targets["left"])
    assert not torch.equal(a.base.image, c.base.image)


@pytest.mark.slow
def test_config_statistics_match_the_generated_images():
    cfg = compose_cfg("data=multimnist", "task=left")
    train, _ = build("data=multimnist", "task=left", "data.num_train=2000", "data.num_val=16")
    image = train.base.image
    assert abs(image.mean().item() - cfg.data.mean[0]) < 0.01
    assert abs(image.std().item() - cfg.data.std[0]) < 0.01
    normalised = torch.stack([train[i]["image"] for i in range(500)])
    assert abs(normalised.mean().item()) < 0.05 and abs(normalised.std().item() - 1) < 0.05


def test_mnist_source(tmp_path):
    with pytest.raises(UserError, match=r"MNIST not found under .*MNIST/raw; set data.download=true"):
        build(*TASKS, "data.source=mnist", f"data.root={tmp_path}")
    with pytest.raises(UserError, match=r"data.source=mnist needs data.root"):
        build(*TASKS, "data.source=mnist")
    write_mnist(tmp_path, n_train=40, n_test=20)
    train, val = build(*TASKS, "data.source=mnist", f"data.root={tmp_path}")
    labels = set((tmp_path / "MNIST/raw/train-labels-idx1-ubyte").read_bytes()[8:])  # after the IDX header
    assert set(train.base.targets["left"].tolist()) <= labels
    assert len(val) == 16 and train[0]["image"].shape == (3, 28, 28)


def test_flip_and_unknown_source_are_refused():
    with pytest.raises(UserError, match="swap the left and right digits"):
        build(*TASKS, "data.augment.hflip=true")
    with pytest.raises(UserError, match="data.source=svhn"):
        build(*TASKS, "data.source=svhn")
