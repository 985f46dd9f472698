"""One module per source: SOURCE (the sample file name), SEED, and rows(rng) -> raw rows."""
