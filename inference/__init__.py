"""The SageMaker serving side: ONNX Runtime scoring engine behind nginx -> gunicorn -> Flask."""
