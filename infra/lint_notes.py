"""cfn-lint notes written into the templates, each for a finding that is the CDK's own doing."""
from __future__ import annotations

import aws_cdk as cdk
import jsii
from constructs import IConstruct


@jsii.implements(cdk.IAspect)
class RoleDependsOnNote:
    """Ignore cfn-lint W3005 ("DependsOn already enforced by a GetAtt") on Lambda functions and state machines.

    The CDK's Function and StateMachine constructs reference their execution role (``Role``/``RoleArn``)
    and also list it in DependsOn, next to the role's default policy, so that the policy exists before
    the first invocation or execution. The role entry is redundant and harmless, and not ours to change.
    """

    RESOURCE_TYPES = ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine")
    CHECK = "W3005"

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, cdk.CfnResource) and node.cfn_resource_type in self.RESOURCE_TYPES:
            note = node.get_metadata("cfn-lint") or {"config": {"ignore_checks": []}}
            checks = note["config"].setdefault("ignore_checks", [])
            if self.CHECK not in checks:
                checks.append(self.CHECK)
            node.add_metadata("cfn-lint", note)
