"""Typed errors of the field layer."""

from __future__ import annotations

from smmc.domain.error_catalog import FieldError

__all__ = ["FieldFailure", "UnknownDevice"]


class UnknownDevice(LookupError):
    """The store lacks what a session needs (address, keys, password): not a field fault."""


class FieldFailure(Exception):
    """A field operation failed; ``error`` is its catalog row in the utility's report form."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def retryable(self) -> bool:
        return self.error.retryable
