"""The work-order engine: workers that lease orders and run pluggable executors, and the
scheduler that turns recurring activities into orders."""
