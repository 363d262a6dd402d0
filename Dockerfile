# One image for SageMaker (bring your own container): `docker run IMAGE serve` answers on port 8080,
# `docker run IMAGE train` runs a training job. Built for linux/amd64 (the CDK image asset sets the platform).
#   target `serve`: nginx + gunicorn + Flask + ONNX Runtime, no TensorFlow (endpoint, batch transform)
#   target `train`: `serve` plus TensorFlow/Keras and all of model_code (training jobs; it can also serve)
#   target `train-gpu`: `train` plus JAX with its CUDA 12 wheels, for GPU training instances: Keras runs on JAX
#     (same `train` command, /opt/ml contract, metric lines and checkpoints); the ONNX export runs TensorFlow in a
#     subprocess on the CPU. Several GB: built only when training_instance_type is a GPU type.

FROM python:3.11-slim-bookworm AS serve

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/opt/program \
    PATH="/opt/program/inference:${PATH}"

# nginx is left to Debian's current bookworm package: the base image tag fixes the release, and a
# pinned Debian revision disappears from the archive with the next security update, breaking the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/program

COPY requirements-serve.txt ./
RUN pip install --no-cache-dir -r requirements-serve.txt

# serving reads the model directory through model_code.artifacts only (NumPy and the standard library)
COPY model_code/__init__.py model_code/artifacts.py model_code/
COPY inference/ inference/

EXPOSE 8080
CMD ["serve"]


FROM serve AS train

COPY requirements-train.txt ./
RUN pip install --no-cache-dir -r requirements-train.txt

COPY model_code/ model_code/


FROM train AS train-gpu

ENV KERAS_BACKEND=jax

COPY requirements-train-gpu.txt ./
RUN pip install --no-cache-dir -r requirements-train-gpu.txt
