"""GRU4Rec in Keras 3, by job:

- ``artifacts``: the model directory's layout and a TensorFlow-free reader (all that serving imports);
- ``data``: reading and checking events, sessions, data windows, the item index, batches, synthetic data;
- ``gru4rec``: the model, its losses, sampler, optimizer, training step and trainer, and its parameters;
- ``ranking``: the ranking metrics and the baselines measured with them;
- ``export``: the ONNX scorer written into the model directory;
- ``commands``: train, evaluate, tune and recommend, with a run's checkpoints, report and plots.

Importing the package imports nothing heavy; TensorFlow/Keras load only in the
modules that need them.
"""
