"""Deploy rehearsal of the storefront variants (tests/infra/conftest.py): what moto skips of them is declared,
and the user pool storefront is created. A module of its own: moto's state is per process, and the default
stage's rehearsal holds it for the length of its module."""
from __future__ import annotations

import copy
import dataclasses

import pytest
from moto.cloudformation.parsing import NULL_MODELS, get_model_map

from tests.infra.test_deploy_rehearsal import NOT_CREATED_BY_MOTO, rehearse

pytestmark = [pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")]


# What the storefront variants add to the Api stack that moto 5.2.5's CloudFormation cannot create: the
# identity pool and its role attachment, the user pool authorizer and the WAFv2 resources. Their templates
# are checked by cfn-lint, cdk-nag, parliament and the AWS rules (tests/infra/test_aws_rules.py).
STOREFRONT_SKIPPED = {
    "storefront_guests": {"AWS::Cognito::IdentityPool", "AWS::Cognito::IdentityPoolRoleAttachment",
                          "AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation", "AWS::WAFv2::LoggingConfiguration"},
    "storefront_users": {"AWS::ApiGateway::Authorizer"},
}


@pytest.mark.parametrize("variant", list(STOREFRONT_SKIPPED))
def test_what_moto_skips_of_the_storefront_variants_is_declared(variants, variant):
    supported = set(get_model_map()) | set(NULL_MODELS)
    api = variants[variant].templates[variants[variant].stacks["api"].stack_name]
    skipped = {r["Type"] for r in api["Resources"].values() if r["Type"] not in supported}
    assert skipped == NOT_CREATED_BY_MOTO["api"] | STOREFRONT_SKIPPED[variant]


def _mock_integrations_with_a_verb(templates: dict[str, dict]) -> dict[str, dict]:
    """The templates with ``IntegrationHttpMethod`` and ``Uri`` on the CORS preflight's MOCK integration: moto 5.2.5
    reads both from every integration, CloudFormation requires them only of integrations that call a back end."""
    patched = copy.deepcopy(templates)
    for template in patched.values():
        for resource in template["Resources"].values():
            integration = resource.get("Properties", {}).get("Integration", {})
            if resource["Type"] == "AWS::ApiGateway::Method" and integration.get("Type") == "MOCK":
                integration.update(IntegrationHttpMethod=resource["Properties"]["HttpMethod"], Uri="")
    return patched


def test_the_user_pool_storefront_deploys(variants):
    """The guests' variant is not rehearsed: the identity pool's roles read ``Fn::GetAtt`` of the pool, which
    moto does not create, and moto refuses the whole template for it."""
    result = variants["storefront_users"]
    with rehearse(dataclasses.replace(result, templates=_mock_integrations_with_a_verb(result.templates))) as record:
        failed = {name: events for name, (status, events) in record["stacks"].items() if status != "CREATE_COMPLETE"}
        assert failed == {}
        apis = record["session"].client("apigateway").get_rest_apis()["items"]
        assert [api["name"] for api in apis] == ["gru4rec-dev-api"]
