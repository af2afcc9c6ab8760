"""--plot: an image from a report, without a window; a clear error without matplotlib."""

from __future__ import annotations

import builtins
import sys

import pytest

from diagnosis_fixtures import make_diagnosis, make_report, probe
from etafinder.errors import InputError
from etafinder.plot import check_plot_path, write_plot
from etafinder.types import Phase


def test_writes_png(tmp_path):
    """A PNG appears, with no temporary file beside it and pyplot never imported."""
    pytest.importorskip("matplotlib")
    had_pyplot = "matplotlib.pyplot" in sys.modules
    path = tmp_path / "p.png"
    write_plot(make_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules


def test_plot_without_eta_max_or_curvature(tmp_path):
    """A report without η_max, with only divergent end curvatures missing, still draws."""
    pytest.importorskip("matplotlib")
    d = make_diagnosis((probe(0.08, Phase.LAZY), probe(0.3, Phase.DIVERGENT)), bracket=None)
    write_plot(make_report(d), tmp_path / "p.svg")
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_bad_suffix(tmp_path):
    """Only image formats are accepted."""
    with pytest.raises(InputError, match=r"--plot .*p\.txt: expected a file ending in \.png"):
        check_plot_path(tmp_path / "p.txt")


def test_missing_matplotlib(monkeypatch, tmp_path):
    """Without the extra: an InputError naming the option and how to install it."""
    real = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(InputError, match="matplotlib is not installed") as e:
        check_plot_path(tmp_path / "p.png")
    assert "etafinder[plot]" in e.value.hint
