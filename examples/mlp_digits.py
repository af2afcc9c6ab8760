"""A two-layer ReLU MLP on scikit-learn's bundled digits (1797 8×8 images), mse on one-hot targets.

    etafinder probe examples/mlp_digits.py

The model-file contract: ``model()`` returns a fresh ``torch.nn.Module``, ``data()`` returns
``(inputs, targets)``, ``loss`` names the loss. etafinder seeds ``random``, numpy and torch before
calling each function, so the initialisation below is reproducible without a seed of its own.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

loss = "mse"  # F.mse_loss, mean over samples and outputs (the default)

WIDTH = 128


def model() -> nn.Module:
    """64 pixels -> 128 ReLU units -> 10 outputs, PyTorch's default initialisation."""
    return nn.Sequential(nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized pixels (constant pixels left at 0) and one-hot targets."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    std = x.std(dim=0)
    x = (x - x.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    targets = nn.functional.one_hot(torch.tensor(y), num_classes=10).float()
    return x, targets
