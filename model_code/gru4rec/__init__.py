"""The GRU4Rec model and its training: parameters, losses, sampler, optimizer, training step, trainers."""
