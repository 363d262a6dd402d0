"""A Batch Transform job's request settings, with no CDK import: the batch stack sets them on every job and
``benchmarks/transform_rate.py`` measures the container with the same ones."""
from __future__ import annotations

# The serving container's contract (its /execution-parameters): MultiRecord batches of at most 6 MB
MAX_PAYLOAD_MB = 6
BATCH_STRATEGY = "MultiRecord"
# SageMaker: MaxConcurrentTransforms x MaxPayloadInMB may not exceed 100 MB
MAX_PAYLOAD_TOTAL_MB = 100
# vCPUs of the SageMaker instance sizes below "2xlarge"; "<n>xlarge" has 4 n
SMALL_SIZE_VCPUS = {"medium": 1, "large": 2, "xlarge": 4}


def instance_vcpus(instance_type: str) -> int:
    """vCPUs of a SageMaker instance type, from its size (``ml.m5.2xlarge`` -> 8)."""
    size = instance_type.rsplit(".", 1)[-1]
    multiple = size.removesuffix("xlarge")
    if size in SMALL_SIZE_VCPUS:
        return SMALL_SIZE_VCPUS[size]
    if size.endswith("xlarge") and multiple.isdigit():
        return 4 * int(multiple)
    raise ValueError(f"transform_instance_type {instance_type!r}: cannot tell its vCPUs from the size {size!r}")


def transform_workers(instance_type: str) -> int:
    """Requests a transform instance serves at once (MaxConcurrentTransforms, and the container's workers):
    one per vCPU, at most as many as SageMaker allows with ``MAX_PAYLOAD_MB`` payloads."""
    return min(instance_vcpus(instance_type), MAX_PAYLOAD_TOTAL_MB // MAX_PAYLOAD_MB)
