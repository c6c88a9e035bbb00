"""The field layer: credentials, sessions and drivers that talk DLMS to meters and
concentrators on behalf of the work-order executors (see docs/field.md)."""
