"""The commands (train, evaluate, tune, recommend) and a run's bookkeeping: checkpoints, report, plots."""
