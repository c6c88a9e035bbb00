"""xDLMS and ACSE APDUs (to be completed)."""
