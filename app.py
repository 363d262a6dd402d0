"""CDK app: the GRU4Rec stacks of the stage named in the context (cdk.json, or ``-c stage=...``).

Every stack is checked with cdk-nag's AWS Solutions rules; an unacknowledged finding fails the synth.
"""
import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.app_builder import build_app

app = cdk.App()
build_app(app)
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
