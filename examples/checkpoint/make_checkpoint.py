"""Train the MLP of ``model.py`` briefly and save its weights as ``mlp_digits_trained.safetensors``.

    python examples/checkpoint/make_checkpoint.py

Full-batch gradient descent at a lazy rate, seeded: rerunning it rewrites the same file.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside model.py

import torch  # noqa: E402
from model import data, model  # noqa: E402  (this folder is on sys.path when run as a script)
from safetensors.torch import save_file  # noqa: E402

STEPS = 300
LR = 0.3
OUT = Path(__file__).with_name("mlp_digits_trained.safetensors")


def main() -> None:
    """Train and save."""
    torch.manual_seed(0)
    net = model()
    x, y = data()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    for step in range(STEPS + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.4f}")
        if step < STEPS:
            loss.backward()
            opt.step()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
