"""One module per stage. Each has `train(config, run)`: load data and model, train, write the run directory.
Stages share helpers from `common`, not a base class."""
