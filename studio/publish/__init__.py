"""Sharing a finished run: merged weights, a model card, a Hub push and a Space."""
