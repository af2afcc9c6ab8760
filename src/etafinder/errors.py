"""One exception family. The core raises these; only ``cli`` turns them into exit codes."""

from __future__ import annotations


class EtafinderError(Exception):
    """Base of every error etafinder raises on purpose.

    Args:
        message: first line: what is wrong, naming the file or option.
        hint: an optional second part: what to try instead.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n\n{self.hint}"


class InputError(EtafinderError):
    """A user mistake: a bad file, data, checkpoint, option or optimizer setting (exit 2)."""


class ReportError(EtafinderError):
    """A report file that is not an etafinder report, or of an unknown schema (exit 2)."""
