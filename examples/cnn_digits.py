"""A small CNN on scikit-learn's bundled digits (8×8 grey images, 10 classes), cross-entropy.

    etafinder probe examples/cnn_digits.py --samples 512

With cross-entropy λ₀ is the top eigenvalue of the Gauss–Newton matrix with the softmax Hessian;
the catapult picture there is empirical rather than the paper's theorem (see the README).
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

loss = "cross_entropy"  # F.cross_entropy, mean over samples; targets are class indices


def model() -> nn.Module:
    """Two 3×3 convolutions (8 and 16 channels), a 2×2 max-pool, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Images scaled to [0, 1], shaped (N, 1, 8, 8), and integer class labels."""
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return x, torch.tensor(labels, dtype=torch.long)
