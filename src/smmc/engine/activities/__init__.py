"""Executors of the field activities: one module per activity, sharing `base`."""

from smmc.engine.activities.base import FieldContext, FieldExecutor, register_field_executors

__all__ = ["FieldContext", "FieldExecutor", "register_field_executors"]
