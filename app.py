"""CDK app: the GRU4Rec stacks of the stage named in the context (cdk.json, or ``-c stage=...``).

Every stack is checked with cdk-nag's AWS Solutions rules; an unacknowledged finding fails the synth.
A bad setting stops the synth with one line naming its context key.
"""
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.app_builder import build_app
from infra.config import ConfigError

app = cdk.App()
try:
    build_app(app)
except ConfigError as error:
    sys.exit(f"error: {error}")
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
