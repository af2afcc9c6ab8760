"""Shared pytest configuration.

Only what every test file needs belongs here; fixtures live in the test files that use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` where CUDA is absent (the marker's meaning in pyproject.toml).

    Args:
        config: the pytest configuration.
        items: the collected tests.
    """
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run a module's tests on one intra-op thread (opt in with ``pytest.mark.usefixtures``).

    The reference problems are tiny: with several threads torch spends its time synchronising
    them, several times slower than one thread, and much worse on a busy machine.

    Yields:
        Nothing; the previous thread count is restored afterwards.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
