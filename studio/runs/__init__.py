"""Runs: a run directory per training, the worker process that fills it, and the index that lists them."""
