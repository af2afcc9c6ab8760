"""etafinder: theory-backed learning rates for PyTorch (Lewkowycz et al. 2020, arXiv:2003.02218)."""

from __future__ import annotations

__version__ = "0.1.0"
