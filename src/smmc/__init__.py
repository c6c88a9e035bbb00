"""SMMC: open-source AMI head-end and operations system."""

__version__ = "0.1.0"
