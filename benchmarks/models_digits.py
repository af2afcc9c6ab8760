"""Shared data and models for the digits benchmarks (scikit-learn's bundled ``load_digits``).

* data: 1,797 8×8 digit images, 64 features standardised with the **training** split's
  mean/std; one fixed, seeded split of 1,200 train / 597 validation samples (``SPLIT_SEED``), the
  same for every model seed. Nothing is downloaded.
* ``mlp``: 64→256→256→10 ReLU, trained with ``F.mse_loss`` on one-hot targets (the paper's loss).
* ``cnn``: conv(1→16, 3)–ReLU–conv(16→32, 3)–ReLU–flatten–linear(512→10) on 1×8×8 inputs,
  trained with ``F.cross_entropy`` on class indices.

Every model is built with PyTorch's default initialisation after ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

SPLIT_SEED = 0
N_TRAIN = 1200
N_VAL = 1797 - N_TRAIN  # load_digits has 1,797 samples
N_CLASSES = 10


@dataclass(frozen=True)
class Split:
    """One train/validation split: inputs as the model takes them, targets as the loss does."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    labels_train: Tensor  # class indices (for accuracy)
    labels_val: Tensor


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised features and labels, split ``N_TRAIN`` / rest with ``SPLIT_SEED``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    tr, va = perm[:N_TRAIN], perm[N_TRAIN:]
    mean = x[tr].mean(axis=0)
    std = x[tr].std(axis=0)
    std[std == 0] = 1.0  # the always-blank border pixels
    xs = (x - mean) / std
    return xs[tr], y[tr], xs[va], y[va]


def digits(kind: str, dtype: torch.dtype = torch.float32) -> Split:
    """The split for ``kind``: ``"mlp"`` (flat inputs, one-hot) or ``"cnn"`` (1×8×8, indices)."""
    xtr, ytr, xva, yva = digits_arrays()
    xt, xv = torch.tensor(xtr, dtype=dtype), torch.tensor(xva, dtype=dtype)
    lt, lv = torch.tensor(ytr, dtype=torch.long), torch.tensor(yva, dtype=torch.long)
    if kind == "mlp":
        eye = torch.eye(N_CLASSES, dtype=dtype)
        return Split(xt, eye[lt], xv, eye[lv], lt, lv)
    if kind == "cnn":
        return Split(xt.reshape(-1, 1, 8, 8), lt, xv.reshape(-1, 1, 8, 8), lv, lt, lv)
    raise ValueError(f"unknown model kind {kind!r}")


def mlp(seed: int) -> nn.Module:
    """64→256→256→10 ReLU MLP, default init under ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, N_CLASSES)
    )


def cnn(seed: int) -> nn.Module:
    """conv(1→16,3)–ReLU–conv(16→32,3)–ReLU–flatten–linear→10 on 8×8 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, N_CLASSES),
    )


#: model kind → (builder, etafinder loss name)
MODELS = {"mlp": (mlp, "mse"), "cnn": (cnn, "cross_entropy")}
