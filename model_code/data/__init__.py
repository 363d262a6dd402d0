"""Events in: the reading rules, event files, sessions, data windows, the item index, batches, synthetic data."""
