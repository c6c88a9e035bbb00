"""Executors of the field activities: one module per activity, sharing `base`."""

from smmc.engine.activities.base import FieldContext, FieldExecutor, register_field_executors
from smmc.engine.activities.collection import register_collection_executors

__all__ = [
    "FieldContext",
    "FieldExecutor",
    "register_collection_executors",
    "register_field_executors",
]
