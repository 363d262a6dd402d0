"""Which SageMaker instance types carry local NVMe instance storage, where SageMaker refuses a volume key.

AWS's rule (the ``VolumeKmsKeyId`` of ResourceConfig and TransformResources, the ``KmsKeyId`` of
CreateEndpointConfig): "Certain Nitro-based instances include local storage ... Local storage
volumes are encrypted using a hardware module on the instance. You can't request a VolumeKmsKeyId
when using an instance type with local storage."
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html
Families with NVMe instance storage, e.g. ml.p4d, ml.g4dn, ml.g5:
https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage-tips-considerations.html

No import of the CDK: the stacks and the operator CLI share it.
"""
from __future__ import annotations

import re

# Families with instance storage whose names carry no "d" attribute (EC2's instance-store table)
_LOCAL_STORAGE_FAMILIES = frozenset({
    "g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "p6", "trn1", "trn1n", "trn2",
})
# <letters><generation><attributes>: a "d" among the attributes means local NVMe disks (m5d, c6id, g4dn, p4de, ...)
_FAMILY = re.compile(r"(?P<series>[a-z]+)(?P<generation>\d+)(?P<attributes>[a-z]*)")

LOCAL_STORAGE_REASON = (
    "Instance types with local NVMe storage (ml.*d.*, g4dn, g5, g6, p4d, p5, trn1, ...) encrypt it with a hardware "
    "module and SageMaker rejects a KMS key for their volumes (API_ResourceConfig, API_CreateEndpointConfig: "
    "\"You can't request a VolumeKmsKeyId when using an instance type with local storage\")."
)


def instance_family(instance_type: str) -> str:
    """``ml.g4dn.xlarge`` -> ``g4dn``; a name that is not ``ml.<family>.<size>`` raises ValueError naming it."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml" or not parts[1]:
        raise ValueError(f"instance type {instance_type!r}: expected ml.<family>.<size>, e.g. ml.m5.large")
    return parts[1]


def has_local_storage(instance_type: str) -> bool:
    """True for instance types whose storage is local NVMe (no EBS volume, so no volume key allowed)."""
    family = instance_family(instance_type).split("-")[0]
    if family in _LOCAL_STORAGE_FAMILIES:
        return True
    match = _FAMILY.fullmatch(family)
    return bool(match and "d" in match.group("attributes"))


def uses_volume_key(instance_type: str) -> bool:
    """Whether SageMaker accepts the stage key for this instance type's storage volume."""
    return not has_local_storage(instance_type)
