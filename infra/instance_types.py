"""SageMaker instance types as the installed botocore lists them: checked offline, at synth time.

botocore ships SageMaker's API model, whose enums name every instance type each kind of job accepts
(``TrainingInstanceType``, ``ProductionVariantInstanceType`` for endpoints, ``TransformInstanceType``).
A type missing there would fail at deploy time; a newer type than the pinned botocore knows needs a
newer botocore. Availability in a region and account quotas are not checked (see docs/deploy.md).
"""
from __future__ import annotations

import difflib
import functools

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
