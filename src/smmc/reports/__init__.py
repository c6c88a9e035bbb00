"""Daily files and reports in the seed formats."""
