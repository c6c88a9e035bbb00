"""Fixtures of the engine tests (defined in `wo_fixtures`)."""

from wo_fixtures import clock, queue

__all__ = ["clock", "queue"]
