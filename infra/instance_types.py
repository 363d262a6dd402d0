"""SageMaker instance types as the installed botocore lists them: checked offline, at synth time.

botocore ships SageMaker's API model, whose enums name every instance type each kind of job accepts
(``TrainingInstanceType``, ``ProductionVariantInstanceType`` for endpoints, ``TransformInstanceType``).
A type missing there would fail at deploy time; a newer type than the pinned botocore knows needs a
newer botocore. Availability in a region and account quotas are not checked (see docs/deploy.md).
"""
from __future__ import annotations

import difflib
import functools

from infra.instance_storage import instance_family

SHAPES = {
    "training": "TrainingInstanceType",
    "endpoint": "ProductionVariantInstanceType",
    "transform": "TransformInstanceType",
}


@functools.cache
def instance_types(kind: str) -> frozenset[str]:
    """The instance types of ``kind`` (training, endpoint or transform)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(SHAPES[kind]).enum)


def instance_type_problem(kind: str, value: str) -> str | None:
    """None when ``value`` is a SageMaker ``kind`` instance type, else what is wrong, with the closest ones."""
    known = instance_types(kind)
    if value in known:
        return None
    close = difflib.get_close_matches(value, sorted(known), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return (f"{value!r} is not a SageMaker {kind} instance type{hint}; botocore lists {len(known)} of them, "
            f"e.g. ml.m5.large")


# NVIDIA GPU families the `train-gpu` image (JAX's CUDA 12 wheels, linux/amd64) runs on: T4 (g4dn), A10G (g5),
# L4 (g6), L40S (g6e), V100 (p3, p3dn), A100 (p4d, p4de), H100/H200 (p5, p5e, p5en).
GPU_TRAINING_FAMILIES = frozenset({"g4dn", "g5", "g6", "g6e", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en"})
# accelerated families neither training image can use, and why
_UNUSABLE_ACCELERATORS = {
    "p2": "its K80 GPUs are older than CUDA 12 supports",
    "trn": "Trainium needs the Neuron SDK, which neither training image has",
    "p6e": "its Grace hosts are Arm, the images are linux/amd64",
    "p6": "its Blackwell GPUs are not checked with the pinned jax-cuda12 wheels",
    "g7": "its Blackwell GPUs are not checked with the pinned jax-cuda12 wheels",
}


def is_gpu_training_type(instance_type: str) -> bool:
    """Whether training jobs on this instance type get the GPU image (``train-gpu``) rather than ``train``."""
    return instance_family(instance_type) in GPU_TRAINING_FAMILIES


def training_image_problem(instance_type: str) -> str | None:
    """None when one of the training images runs on ``instance_type``, else why none does."""
    family = instance_family(instance_type)
    if family in GPU_TRAINING_FAMILIES:
        return None
    for prefix, reason in _UNUSABLE_ACCELERATORS.items():
        if family.startswith(prefix):
            return (
                f"{instance_type!r} cannot run the training images: {reason}; pick a CPU type (ml.m5.*, ml.c5.*, ...) "
                f"or a GPU type of {sorted(GPU_TRAINING_FAMILIES)}"
            )
    return None
