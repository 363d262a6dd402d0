"""The SageMaker Python SDK set up for moto: no telemetry requests, no role simulation (moto
has no iam:SimulatePrincipalPolicy; the role must still exist)."""
from pathlib import Path

SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def offline_sdk(monkeypatch, folder: Path) -> None:
    config = folder / "sagemaker-config.yaml"
    config.write_text(SDK_CONFIG)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
