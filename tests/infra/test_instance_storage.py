"""Instance types with local NVMe storage: no volume key anywhere they are used, and no grant for one."""
from __future__ import annotations

import pytest

from infra.instance_storage import has_local_storage, instance_family
from tests.infra.conftest import synthesize
from tests.support.pipelines import as_list, definition, policy_statements, resources

NVME_TYPES = {"training_instance_type": "ml.g4dn.xlarge", "endpoint_instance_type": "ml.g5.xlarge",
              "transform_instance_type": "ml.g4dn.xlarge"}


@pytest.mark.parametrize("instance_type, local", [
    # families SageMaker's storage page names as NVMe, and EC2's "d" families
    ("ml.g4dn.xlarge", True), ("ml.g5.2xlarge", True), ("ml.p4d.24xlarge", True), ("ml.p4de.24xlarge", True),
    ("ml.g6.xlarge", True), ("ml.g6e.xlarge", True), ("ml.p5.48xlarge", True), ("ml.m5d.large", True),
    ("ml.c5d.xlarge", True), ("ml.r5d.large", True), ("ml.p3dn.24xlarge", True), ("ml.trn1.2xlarge", True),
    # EBS only
    ("ml.m5.large", False), ("ml.c5.xlarge", False), ("ml.c5n.xlarge", False), ("ml.p3.2xlarge", False),
    ("ml.g4ad.xlarge", True), ("ml.inf2.xlarge", False), ("ml.t2.medium", False), ("ml.m6i.large", False),
])
def test_local_storage_families(instance_type, local):
    assert has_local_storage(instance_type) is local


def test_a_name_that_is_no_instance_type_is_refused_by_name():
    with pytest.raises(ValueError, match="m5.large"):
        instance_family("m5.large")


@pytest.fixture(scope="module")
def nvme(tmp_path_factory, dummy_model_artifact):
    return synthesize(tmp_path_factory.mktemp("nvme"), {"initial_model_artifact": str(dummy_model_artifact),
                                                         **NVME_TYPES})


def test_nvme_types_synthesize_and_pass_cdk_nag(nvme):
    assert nvme.nag_error is None


def test_no_volume_key_for_nvme_types(nvme):
    (endpoint_config,) = resources(nvme.template_dict("endpoint"), "AWS::SageMaker::EndpointConfig").values()
    assert "KmsKeyId" not in endpoint_config["Properties"]
    assert "KmsKeyId" in endpoint_config["Properties"]["DataCaptureConfig"], "S3 encryption is not the volume's"
    training = definition(nvme.template_dict("training"))["States"]
    assert "VolumeKmsKeyId" not in training["Train"]["Arguments"]["ResourceConfig"]
    assert "KmsKeyId" not in training["Create endpoint config"]["Arguments"]
    assert "KmsKeyId" in training["Train"]["Arguments"]["OutputDataConfig"]
    batch = definition(nvme.template_dict("batch"))["States"]
    assert "VolumeKmsKeyId" not in batch["Transform"]["Arguments"]["TransformResources"]


def test_no_grant_for_a_volume_key_that_is_not_used(nvme, synth):
    def grants(result) -> int:
        return sum("kms:CreateGrant" in as_list(s["Action"])
                   for key in ("endpoint", "training", "batch") for s in policy_statements(result.template_dict(key)))

    assert grants(nvme) == 0
    # model role, training role and its caller, transform role and its two callers (the batch and events pipelines)
    assert grants(synth) == 6


def test_the_dropped_endpoint_key_is_acknowledged_with_the_aws_rule(nvme):
    acknowledged = nvme.acknowledged_rules()
    (rules,) = [rules for path, rules in acknowledged.items() if path.endswith("/Gru4Rec-Dev-Endpoint/EndpointConfig")]
    assert set(rules) == {f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured"
                          for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321")}
    assert all("You can't request a VolumeKmsKeyId" in reason for reason in rules.values())
