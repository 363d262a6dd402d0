# One image for SageMaker (bring your own container): `docker run IMAGE serve` answers on port 8080,
# `docker run IMAGE train` runs a training job. Built for linux/amd64 (the CDK image asset sets the platform).
#   target `serve`: nginx + gunicorn + Flask + ONNX Runtime, no TensorFlow (endpoint, batch transform)
#   target `train`: `serve` plus Keras, JAX, TensorFlow and all of model_code (training jobs; it can also serve).
#     Keras trains on JAX (faster than TensorFlow on a CPU); the ONNX export runs TensorFlow in a subprocess.
#     glibc backs large allocations with transparent huge pages: the steps gather and scatter rows all over
#     the item tables, and fewer TLB misses make that faster (README, "Training speed on a CPU").
#   target `train-gpu`: `train` plus JAX's CUDA 12 wheels, for GPU training instances (same `train` command,
#     /opt/ml contract, metric lines and checkpoints). Several GB: built only when training_instance_type is a GPU type.

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

ENV KERAS_BACKEND=jax \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1

COPY requirements-train.txt ./
RUN pip install --no-cache-dir -r requirements-train.txt

COPY model_code/ model_code/


FROM train AS train-gpu

COPY requirements-train-gpu.txt ./
RUN pip install --no-cache-dir -r requirements-train-gpu.txt
