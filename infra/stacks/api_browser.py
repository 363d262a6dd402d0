"""What a storefront page needs to call the API itself: guest identities, CORS headers and a web firewall."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito_identitypool as identitypool
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import AppConfig
from infra.log_groups import owned_log_group

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"
# What a page sends: JSON, SigV4's headers (the session token of guest credentials included), or a
# Cognito ID token in Authorization
REQUEST_HEADERS = ("Content-Type", "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256")
COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
# A rate-based rule counts each client IP's requests over this window (WAF's default, in seconds)
RATE_WINDOW_SECONDS = 300


def response_cors_headers(config: AppConfig, exposed: tuple[str, ...]) -> dict[str, str]:
    """Header name -> static mapping value (``'...'``) every answer carries so the page may read it: its
    origin, and the non-safelisted headers it may look at (Retry-After, X-Validation-Error)."""
    if config.cors_allowed_origins is None:
        return {}
    return {ALLOW_ORIGIN: f"'{config.cors_allowed_origins}'", EXPOSE_HEADERS: f"'{','.join(exposed)}'"}


def add_preflight(config: AppConfig, resource: apigw.IResource) -> apigw.Method | None:
    """An OPTIONS method the API answers itself (a mock integration, no credentials: browsers send none with a
    preflight), allowing the configured origin to POST JSON with SigV4 or a token."""
    if config.cors_allowed_origins is None:
        return None
    return resource.add_cors_preflight(allow_origins=[config.cors_allowed_origins], allow_methods=["POST"],
                                       allow_headers=list(REQUEST_HEADERS), max_age=cdk.Duration.hours(1))


def guest_identities(scope: Construct, config: AppConfig, method: apigw.Method) -> identitypool.IdentityPool:
    """A Cognito identity pool whose guest (unauthenticated) role may invoke ``method`` and nothing else.

    Guests take the basic flow (GetId, GetOpenIdToken, then STS AssumeRoleWithWebIdentity): in the enhanced
    flow Cognito intersects the guest role with AmazonCognitoUnAuthedIdentitiesSessionPolicy, which grants no
    execute-api action, so a guest would be refused
    (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonCognitoUnAuthedIdentitiesSessionPolicy.html).
    The role's trust policy (the construct's) admits only this pool's unauthenticated identities.
    """
    pool = identitypool.IdentityPool(scope, "Guests", identity_pool_name=f"{config.resource_prefix}-guests",
                                     allow_unauthenticated_identities=True, allow_classic_flow=True)
    pool.unauthenticated_role.add_to_principal_policy(iam.PolicyStatement(
        actions=["execute-api:Invoke"], resources=[method.method_arn]))
    cdk.Validations.of(pool).acknowledge(cdk.Acknowledgment(
        id="AwsSolutions-COG7",
        reason="Guest identities are the point: shop visitors who never sign in get short-lived credentials "
               "whose role may invoke POST /recommendations on this stage and nothing else.",
    ))
    cdk.CfnOutput(scope, "GuestIdentityPoolId", value=pool.identity_pool_id,
                  description="Identity pool a page takes guest credentials from (basic flow)")
    cdk.CfnOutput(scope, "GuestRoleArn", value=pool.unauthenticated_role.role_arn,
                  description="Role the page assumes with its guest OpenID token")
    return pool


def web_firewall(scope: Construct, config: AppConfig, stage: apigw.Stage, log_key: kms.IKey) -> wafv2.CfnWebACL:
    """A WAFv2 web ACL on ``stage``: AWS's common rule set, then a per-IP rate limit; logs to an encrypted group.

    WAFv2 has no L2 construct in the CDK: the L1 resources are used.
    """
    acl = wafv2.CfnWebACL(
        scope, "WebAcl", name=f"{config.resource_prefix}-api", scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(f"{config.resource_prefix}-api"),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name=COMMON_RULE_SET, priority=0, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS", name=COMMON_RULE_SET)),
                visibility_config=_visibility(COMMON_RULE_SET)),
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerClientIp", priority=1, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=config.waf_rate_limit, aggregate_key_type="IP", evaluation_window_sec=RATE_WINDOW_SECONDS)),
                visibility_config=_visibility("RatePerClientIp")),
        ],
    )
    wafv2.CfnWebACLAssociation(scope, "WebAclAssociation", resource_arn=stage.stage_arn, web_acl_arn=acl.attr_arn)
    logs = owned_log_group(scope, "WebAclLogs", config, log_key, config.waf_log_group_name)
    wafv2.CfnLoggingConfiguration(scope, "WebAclLogging", resource_arn=acl.attr_arn,
                                  log_destination_configs=[logs.log_group_arn])
    return acl


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=metric,
                                                    sampled_requests_enabled=True)
