"""The ONNX scorer of a trained model, written into the model directory."""
