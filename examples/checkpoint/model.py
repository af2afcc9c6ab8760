"""A model file whose weights come from a checkpoint: a small MLP trained on the digits (mse).

    cd examples/checkpoint
    etafinder probe model.py --checkpoint mlp_digits_trained.safetensors

``model()`` builds the architecture; ``--checkpoint`` loads the trained weights strictly into it (a
``.safetensors`` file here; a ``torch.save(model.state_dict())`` ``.pt`` works the same way). From a
trained start the loss is already small: a catapult there means the loss jumps and settles back near
it, in a flatter region. ``make_checkpoint.py`` (beside this file) made the checkpoint.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

loss = "mse"


def model() -> nn.Module:
    """64 pixels -> 32 ReLU units -> 10 outputs."""
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized pixels and one-hot targets (as in ``examples/mlp_digits.py``)."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    std = x.std(dim=0)
    x = (x - x.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    return x, nn.functional.one_hot(torch.tensor(y), num_classes=10).float()
