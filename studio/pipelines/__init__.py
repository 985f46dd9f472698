"""Multi-stage pipelines (recipes) run as linked runs, and the offline twins of presets."""
