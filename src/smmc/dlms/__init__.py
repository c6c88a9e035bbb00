"""dlms."""
