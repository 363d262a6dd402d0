"""GRU4Rec in Keras 3: data, model, training, evaluation and export.

Importing the package imports nothing heavy; TensorFlow/Keras load only in the
modules that need them.
"""
