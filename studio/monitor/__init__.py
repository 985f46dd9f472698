"""Watching runs: metric rows -> chart series and figures, health warnings, the answers-over-training reader."""
