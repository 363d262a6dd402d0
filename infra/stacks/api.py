"""API: ``POST /recommendations``, a REST API that calls the SageMaker endpoint directly (no Lambda)."""
from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import AppConfig
from infra.log_groups import stage_log_group
from infra.nag import managed_policy_finding
from infra.stacks import api_browser
from infra.stacks.endpoint import EndpointStack

REQUEST_SCHEMA_FILE = Path(__file__).resolve().parent.parent / "api" / "request_schema.json"
JSON = "application/json"

# Every 429 tells the caller how long to wait before retrying.
RETRY_AFTER = "Retry-After"
RETRY_AFTER_SECONDS = 1
# A key over its usage plan's quota waits for the next period (day, week or month, from its start in UTC):
# the 429 QUOTA_EXCEEDED says to come back no sooner than this. "QUOTA_EXCEEDED: The gateway response for the
# usage plan quota exceeded error" (https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)
QUOTA_RETRY_AFTER_SECONDS = {"DAY": 3600, "WEEK": 86400, "MONTH": 86400}
# The container's 4xx statuses the API passes on (its contract: 400 bad input, 413 too large, 415 content type).
CONTAINER_CLIENT_STATUSES = (400, 413, 415)

# SageMaker answers a container's own error with 424 ModelError, carrying the container's status and
# body (OriginalStatusCode, OriginalMessage). A container 4xx of its contract is the caller's mistake:
# its status and its {"error": ...} body pass on; a body that is not a JSON object is wrapped as a JSON
# string, so the answer is JSON whatever the container wrote. Any other container status means the
# model or this stage failed: 502, no internals.
MODEL_ERROR_TEMPLATE = """#set($status = $input.path('$.OriginalStatusCode'))
#set($original = $input.path('$.OriginalMessage'))
#if(CLIENT_STATUS)
#set($context.responseOverride.status = $status)
#if("$!original" == "")
{"error": "the recommendation model refused the request"}
#elseif($original.matches('(?s)\\s*\\{.*\\}\\s*'))
$original
#else
{"error": $input.json('$.OriginalMessage')}
#end
#else
#set($context.responseOverride.status = 502)
{"error": "the recommendation model failed to answer"}
#end""".replace("CLIENT_STATUS", " || ".join(f"$status == {status}" for status in CONTAINER_CLIENT_STATUSES))
# A 400 from SageMaker itself. Its throttling (ThrottlingException) arrives as a 400 whose message is
# null or names the throttling (https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html);
# that answers 429 with Retry-After. Anything else is a request SageMaker refused: 400, and none of its
# message (it can name the account).
THROTTLING_MESSAGE = "(?is).*(throttl|rate exceeded|too many requests).*"
THROTTLED_BODY = '{"error": "too many requests: retry later"}'
# A body above a serverless endpoint's 4 MB is refused by SageMaker before the container sees it, as a 400
# ValidationError "Request <id> has oversize body" (https://github.com/aws/sagemaker-python-sdk/issues/4271):
# that answers 413, as the container does for bodies above its limit.
OVERSIZE_MESSAGE = "(?is).*oversize body.*"
OVERSIZE_BODY = '{"error": "payload too large: this stage\'s endpoint takes at most 4 MB per request"}'
REJECTED_TEMPLATE = f"""#set($message = $input.path('$.message'))
#if("$!message" == "")
#set($message = $input.path('$.Message'))
#end
#if("$!message" == "" || $message.matches('{THROTTLING_MESSAGE}'))
#set($context.responseOverride.status = 429)
#set($context.responseOverride.header.{RETRY_AFTER} = '{RETRY_AFTER_SECONDS}')
{THROTTLED_BODY}
#elseif($message.matches('{OVERSIZE_MESSAGE}'))
#set($context.responseOverride.status = 413)
{OVERSIZE_BODY}
#else
{{"error": "the recommendation endpoint refused the request"}}
#end"""
UNAVAILABLE_BODY = '{"error": "the recommendation service is unavailable: retry later"}'
# statuses the integration responses may produce (413 and 415 pass on from the container)
METHOD_STATUSES = ("200", "400", "413", "415", "429", "502")

# Gateway responses are not run through VTL: API Gateway substitutes $context variables into them as
# they are (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.responseTemplates.html).
# $context.error.messageString is the message already quoted as a JSON string, so it goes in unquoted;
# $context.error.validationErrorString holds quotes of its own, so it travels in a header.
GATEWAY_ERROR_TEMPLATE = '{"error": $context.error.messageString}'
VALIDATION_ERROR_HEADER = "X-Validation-Error"
# headers beyond CORS's safelisted ones that a page may read from an answer
EXPOSED_HEADERS = (RETRY_AFTER, VALIDATION_ERROR_HEADER)
BAD_REQUEST_BODY_TEMPLATE = ('{"error": "the request body is not JSON or does not match the request schema: '
                             f'the {VALIDATION_ERROR_HEADER} header says where"}}')


def request_schema() -> dict:
    """The JSON schema (draft 4) of the request body: the /invocations JSON contract."""
    return json.loads(REQUEST_SCHEMA_FILE.read_text())


class ApiStack(cdk.Stack):
    """REST API with request validation, API key and usage plan, access logs and X-Ray tracing.

    ``api_auth="iam"`` (default): callers sign with SigV4 (AWS_IAM) and send the API key;
    ``api_auth="api_key"``: the API key alone; ``api_auth="cognito"``: a user pool's ID token. Where pages
    call (guest identities or a user pool) the method requires no key, which a page cannot keep secret.
    ``log_key`` encrypts the access log group and the firewall's.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, endpoint: EndpointStack,
                 log_key: kms.IKey, **kwargs) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"GRU4Rec {config.stage}: REST API in front of the SageMaker endpoint",
            **kwargs,
        )
        self.add_stack_dependency(endpoint, "the integration invokes the endpoint by name")
        self.api = self._rest_api(config, log_key)
        self._gateway_responses(config)
        model = self._request_model()
        resource = self.api.root.add_resource("recommendations")
        method = resource.add_method(
            "POST",
            self._integration(config, endpoint),
            api_key_required=not config.browser_callers,
            **self._authorization(config),
            request_models={JSON: apigw.Model.from_model_name(self, "RequestModelName", model.ref)},
            request_validator=self.api.add_request_validator(
                "Validator", validate_request_body=True, validate_request_parameters=True
            ),
            method_responses=[_method_response(config, status) for status in METHOD_STATUSES],
        )
        self._acknowledge_auth(config, method)
        self._browser_access(config, resource, method, log_key)
        api_key = self._usage_plan(config)
        cdk.CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the stage (append recommendations)")
        cdk.CfnOutput(self, "RecommendationsUrl", value=self.api.url_for_path("/recommendations"))
        cdk.CfnOutput(
            self,
            "ApiKeyId",
            value=api_key.key_id,
            description="Id of the API key (aws apigateway get-api-key --include-value)",
        )

    def _rest_api(self, config: AppConfig, log_key: kms.IKey) -> apigw.RestApi:
        access_logs = stage_log_group(self, "AccessLogs", config, log_key, "api-access")
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.resource_prefix}-api",
            description="GRU4Rec session-based recommendations",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(access_log_format()),
                **_stage_throttling(config),
            ),
        )
        cdk.Validations.of(api).acknowledge(cdk.Acknowledgment(
            id=managed_policy_finding(self, "service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
            reason="API Gateway's account-level CloudWatch role, needed for access and execution logs; "
                   "AWS maintains this service-role policy, which grants log writing only.",
        ))
        if not config.waf:
            cdk.Validations.of(api.deployment_stage).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG3",
                    reason="No WAF web ACL (waf=false): callers are authenticated (SigV4, a token or an API key), "
                           "throttled, "
                    "and request bodies are validated against the schema before reaching the endpoint.",
                )
            )
        return api

    def _gateway_responses(self, config: AppConfig) -> None:
        """Errors API Gateway answers itself, as JSON ``{"error": ...}`` like the container's.

        A header may take a context variable (``context.NAME``: "Parameter mapping source reference for REST
        APIs", https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-parameter-mapping-sources.html).
        With CORS on, every one carries the page's origin: an error a page cannot read is a blank failure.
        """
        cors = api_browser.response_cors_headers(config, EXPOSED_HEADERS)
        self.api.add_gateway_response(
            "BadRequestBody", type=apigw.ResponseType.BAD_REQUEST_BODY, status_code="400",
            response_headers={VALIDATION_ERROR_HEADER: "context.error.validationErrorString", **cors},
            templates={JSON: BAD_REQUEST_BODY_TEMPLATE},
        )
        self.api.add_gateway_response(
            "Throttled",
            type=apigw.ResponseType.THROTTLED,
            status_code="429",
            response_headers={RETRY_AFTER: f"'{RETRY_AFTER_SECONDS}'", **cors},
            templates={JSON: GATEWAY_ERROR_TEMPLATE},
        )
        self.api.add_gateway_response(
            "QuotaExceeded", type=apigw.ResponseType.QUOTA_EXCEEDED, status_code="429",
            response_headers={RETRY_AFTER: f"'{QUOTA_RETRY_AFTER_SECONDS[config.api_quota_period]}'", **cors},
            templates={JSON: GATEWAY_ERROR_TEMPLATE},
        )
        for name, response_type in (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX),
        ):
            self.api.add_gateway_response(name, type=response_type, response_headers=cors or None,
                                          templates={JSON: GATEWAY_ERROR_TEMPLATE})

    def _request_model(self) -> apigw.CfnModel:
        schema = request_schema()
        # a schema change must produce a new deployment, or the stage keeps validating against the old one
        self.api.latest_deployment.add_to_logical_id({"requestSchema": schema})
        return apigw.CfnModel(self, "RequestModel", rest_api_id=self.api.rest_api_id, content_type=JSON,
                              name="RecommendationRequest", description=schema["description"], schema=schema)

    def _integration(self, config: AppConfig, endpoint: EndpointStack) -> apigw.AwsIntegration:
        role = iam.Role(self, "InvokeRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                        description=f"API Gateway calls the SageMaker endpoint {endpoint.endpoint_name}, nothing else")
        role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:InvokeEndpoint"],
            resources=[self.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint.endpoint_name)],
        ))
        return apigw.AwsIntegration(
            service="runtime.sagemaker",
            path=f"endpoints/{endpoint.endpoint_name}/invocations",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_parameters={
                    "integration.request.header.Content-Type": f"'{JSON}'",
                    "integration.request.header.Accept": f"'{JSON}'",
                },
                request_templates={JSON: "$input.body"},
                integration_responses=_integration_responses(config),
            ),
        )

    def _authorization(self, config: AppConfig) -> dict:
        """The method's authorization: SigV4, a Cognito user pool's ID token, or none (the API key alone)."""
        if config.api_auth == "cognito":
            pool = cognito.UserPool.from_user_pool_arn(self, "UserPool", config.api_user_pool_arn)
            authorizer = apigw.CognitoUserPoolsAuthorizer(self, "UserPoolAuthorizer", cognito_user_pools=[pool],
                                                          authorizer_name=f"{config.resource_prefix}-users")
            return {"authorization_type": apigw.AuthorizationType.COGNITO, "authorizer": authorizer}
        return {
            "authorization_type": apigw.AuthorizationType.IAM
            if config.api_auth == "iam"
            else apigw.AuthorizationType.NONE
        }

    def _browser_access(
        self, config: AppConfig, resource: apigw.Resource, method: apigw.Method, log_key: kms.IKey
    ) -> None:
        """The preflight, the guests' identity pool and the firewall, each where the context asks for it."""
        preflight = api_browser.add_preflight(config, resource)
        if preflight is not None:
            cdk.Validations.of(preflight).acknowledge(
                *(
                    cdk.Acknowledgment(
                        id=rule,
                        reason=(
                            "The CORS preflight (OPTIONS) is answered by API Gateway itself with headers only: "
                            "browsers send "
                            "it without credentials, so it cannot require any."
                        ),
                    )
                    for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4")
                )
            )
        if config.api_guest_identities:
            api_browser.guest_identities(self, config, method)
        if config.waf:
            api_browser.web_firewall(self, config, self.api.deployment_stage, log_key)

    def _acknowledge_auth(self, config: AppConfig, method: apigw.Method) -> None:
        if config.api_auth == "cognito":
            return
        acknowledgments = [cdk.Acknowledgment(
            id="AwsSolutions-COG4",
            reason="Callers sign with IAM (SigV4: services, or pages with guest credentials) and/or present an API "
                   "key; api_auth=cognito was not chosen, so there is no user pool authorizer.",
        )]
        if config.api_auth == "api_key":
            acknowledgments.append(cdk.Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="api_auth=api_key was chosen in the context: the API key (required on the method, "
                       "throttled and capped by the usage plan) is the only credential.",
            ))
        cdk.Validations.of(method).acknowledge(*acknowledgments)

    def _usage_plan(self, config: AppConfig) -> apigw.IApiKey:
        api_key = self.api.add_api_key("ApiKey", api_key_name=f"{config.resource_prefix}-key")
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{config.resource_prefix}-plan",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_throttle_rate_limit, burst_limit=config.api_throttle_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.api_quota_limit, period=apigw.Period[config.api_quota_period]),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        plan.add_api_key(api_key)
        return api_key


def _stage_throttling(config: AppConfig) -> dict:
    """Where pages call with no key, the usage plan cannot hold them: the stage throttles every caller at its rates."""
    if not config.browser_callers:
        return {}
    return {
        "throttling_rate_limit": config.api_throttle_rate_limit,
        "throttling_burst_limit": config.api_throttle_burst_limit,
    }


def _integration_responses(config: AppConfig) -> list[apigw.IntegrationResponse]:
    """The method's answers to SageMaker's statuses, each with the CORS headers where CORS is on."""
    cors = {f"method.response.header.{name}": value
            for name, value in api_browser.response_cors_headers(config, EXPOSED_HEADERS).items()}
    retry = {f"method.response.header.{RETRY_AFTER}": f"'{RETRY_AFTER_SECONDS}'"}
    return [
        apigw.IntegrationResponse(status_code="200", response_parameters=cors or None),
        apigw.IntegrationResponse(selection_pattern="424", status_code="400", response_parameters=cors or None,
                                  response_templates={JSON: MODEL_ERROR_TEMPLATE}),
        apigw.IntegrationResponse(selection_pattern="400", status_code="400", response_parameters=cors or None,
                                  response_templates={JSON: REJECTED_TEMPLATE}),
        apigw.IntegrationResponse(selection_pattern="429", status_code="429", response_parameters={**retry, **cors},
                                  response_templates={JSON: THROTTLED_BODY}),
        # 403, 404 and the like mean this stage is misconfigured, not that the caller erred
        apigw.IntegrationResponse(selection_pattern=r"4(?!00|24|29)\d{2}|5\d{2}", status_code="502",
                                  response_parameters=cors or None, response_templates={JSON: UNAVAILABLE_BODY}),
    ]


def _method_response(config: AppConfig, status: str) -> apigw.MethodResponse:
    """A declared method response; a 429 carries Retry-After; with CORS on, every one carries the CORS headers."""
    names = [RETRY_AFTER] if status == "429" else []
    names += list(api_browser.response_cors_headers(config, EXPOSED_HEADERS))
    headers = {f"method.response.header.{name}": True for name in names} or None
    return apigw.MethodResponse(
        status_code=status, response_models={JSON: apigw.Model.EMPTY_MODEL}, response_parameters=headers
    )


# The access-log line is JSON: each variable sits where its value cannot break it. Every one of these
# is written inside quotes (ids, times, numbers or "-"), except the error message: its free text goes in
# as $context.error.messageString, already a quoted JSON string.
_ACCESS_LOG_QUOTED = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "apiKeyId": "$context.identity.apiKeyId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "errorType": "$context.error.responseType",
}


def access_log_format() -> str:
    """The stage's access-log format: one JSON object per request."""
    fields = [f"{json.dumps(name)}: {json.dumps(variable)}" for name, variable in _ACCESS_LOG_QUOTED.items()]
    fields.append('"error": $context.error.messageString')
    return "{" + ", ".join(fields) + "}"
