"""Image stack: the repository, the image assets and their copies, the copy function's narrow role."""
import json

from infra.config import PROJECT_ROOT


def _docker_assets(synth) -> dict[str, dict]:
    """build target -> asset manifest entry (with its hash as "hash")."""
    manifest = json.loads((synth.outdir / "Gru4Rec-Dev-Image.assets.json").read_text())["dockerImages"]
    return {
        entry["source"]["dockerBuildTarget"]: {**entry, "hash": asset_hash} for asset_hash, entry in manifest.items()
    }


def _copies(synth) -> list[dict]:
    return list(synth.template("image").find_resources("Custom::CDKECRDeployment").values())


def test_repository_scans_expires_and_is_emptied_on_delete_without_a_custom_resource(synth):
    repository, = synth.template("image").find_resources("AWS::ECR::Repository").values()
    properties = repository["Properties"]
    assert properties["RepositoryName"] == "gru4rec-dev"
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert properties["EmptyOnDelete"] is True
    assert properties.get("EncryptionConfiguration", {"EncryptionType": "AES256"}) == {"EncryptionType": "AES256"}
    assert repository["DeletionPolicy"] == "Delete"
    rules = json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    kept = {rule["selection"]["tagPrefixList"][0]: rule["selection"]["countNumber"]
            for rule in rules if rule["selection"]["tagStatus"] == "tagged"}
    assert kept == {"train-": synth.config.image_keep_count, "serve-": synth.config.image_keep_count}


def test_both_targets_are_built_for_amd64_from_the_repository_dockerfile(synth):
    assets = _docker_assets(synth)
    assert set(assets) == {"train", "serve"}
    for asset in assets.values():
        assert asset["source"]["directory"] == str(PROJECT_ROOT)
        assert asset["source"]["platform"] == "linux/amd64"
        assert "dockerFile" not in asset["source"]  # the default, ./Dockerfile
    assert (PROJECT_ROOT / "Dockerfile").is_file()


def test_each_image_is_copied_into_the_repository_tagged_with_its_asset_hash(synth):
    assets = _docker_assets(synth)
    copies = {
        target: copy
        for target in assets
        for copy in _copies(synth)
        if f":{target}-" in json.dumps(copy["Properties"]["DestImage"])
    }
    assert set(copies) == {"train", "serve"} and len(_copies(synth)) == 2
    for target, copy in copies.items():
        destination = copy["Properties"]["DestImage"]["Fn::Join"][1]
        assert destination[-1] == f":{target}-{assets[target]['hash']}"
        source = json.dumps(copy["Properties"]["SrcImage"])
        assert f"cdk-hnb659fds-container-assets-${{AWS::AccountId}}-${{AWS::Region}}:{assets[target]['hash']}" in source


def test_the_copy_function_has_memory_for_multi_gigabyte_layers(synth):
    """cdk-ecr-deployment's function copies layer by layer; its default 512 MB is short of a GPU image's layers."""
    functions = [r["Properties"] for r in synth.template_dict("image")["Resources"].values()
                 if r["Type"] == "AWS::Lambda::Function"]
    assert functions and all(f["MemorySize"] == 4096 for f in functions)


def test_image_uris_name_the_copies_in_the_stage_repository(synth):
    outputs = synth.template_dict("image")["Outputs"]
    assets = _docker_assets(synth)
    for output, target in (("TrainImageUri", "train"), ("ServeImageUri", "serve")):
        assert outputs[output]["Value"]["Fn::Join"][1][-1] == f":{target}-{assets[target]['hash']}"
    assert synth.stacks["image"].image_uri.endswith(f":train-{assets['train']['hash']}")
    assert synth.stacks["image"].serve_image_uri.endswith(f":serve-{assets['serve']['hash']}")


def test_copy_function_may_push_only_to_the_stage_repository(synth):
    template = synth.template_dict("image")
    repository_id, = synth.template("image").find_resources("AWS::ECR::Repository")
    function, = synth.template("image").find_resources("AWS::Lambda::Function").values()
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    policies = [p for p in synth.template("image").find_resources("AWS::IAM::Policy").values()
                if {"Ref": role_id} in p["Properties"]["Roles"]]
    assert len(policies) == 1, "the construct's own broad statements must not reach the role"
    push_actions = {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"}
    for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
        actions = {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        if actions & push_actions:
            assert statement["Resource"] == {"Fn::GetAtt": [repository_id, "Arn"]}
        if statement["Resource"] == "*":
            assert actions == {"ecr:GetAuthorizationToken"}
        assert not any(a.startswith("s3:") for a in actions)


def test_cpu_training_builds_no_gpu_image(synth):
    assert "train-gpu" not in _docker_assets(synth)
    assert "TrainGpuImageUri" not in synth.template_dict("image")["Outputs"]
    assert synth.stacks["image"].training_image_uri == synth.stacks["image"].image_uri


def test_gpu_training_builds_copies_and_keeps_the_gpu_image(gpu_synth):
    assets = _docker_assets(gpu_synth)
    assert set(assets) == {"train", "serve", "train-gpu"}
    destinations = [copy["Properties"]["DestImage"]["Fn::Join"][1][-1] for copy in _copies(gpu_synth)]
    assert sorted(destinations) == sorted([f":train-{assets['train']['hash']}", f":serve-{assets['serve']['hash']}",
                                           f":gpu-train-{assets['train-gpu']['hash']}"])
    outputs = gpu_synth.template_dict("image")["Outputs"]
    assert outputs["TrainGpuImageUri"]["Value"]["Fn::Join"][1][-1] == f":gpu-train-{assets['train-gpu']['hash']}"
    assert gpu_synth.stacks["image"].training_image_uri.endswith(f":gpu-train-{assets['train-gpu']['hash']}")
    repository, = gpu_synth.template("image").find_resources("AWS::ECR::Repository").values()
    rules = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    prefixes = sorted(prefix for rule in rules for prefix in rule["selection"].get("tagPrefixList", []))
    assert prefixes == ["gpu-train-", "serve-", "train-"]
