"""Endpoint: the live model behind a SageMaker real-time endpoint, its autoscaling and alarms."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import AppConfig
from infra.instance_storage import LOCAL_STORAGE_REASON, uses_volume_key
from infra.layout import CAPTURE_PREFIX, CHALLENGER_VARIANT, LIVE_VARIANT, MODELS_PREFIX
from infra.log_groups import log_group_arn, owned_log_group
from infra.nag import wildcard_resource_finding
from infra.registry import FirstModelVersion
from infra.rollout import (
    RETAINED_VARIANT_PROPERTIES,
    deployment_config,
    read_rollback_alarms_statement,
    rollback_alarm_names,
)
from infra.sagemaker_models import endpoint_network_isolation, primary_container
from infra.stacks.image import ImageStack, pull_image_statements
from infra.stacks.live_model_data import LiveModelData
from infra.stacks.promotion_access import acknowledge_source_reads, read_source_statements
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import alarms_may_publish, volume_key, volume_key_statements

VARIANT_NAME = LIVE_VARIANT
_AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
_AUTOSCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
SERVERLESS_STORAGE_REASON = ("A serverless endpoint has no instance storage volume of this stage to encrypt: "
                             "SageMaker manages the compute it runs on.")


class EndpointStack(cdk.Stack):
    """SageMaker model, endpoint configuration and the endpoint ``gru4rec-<stage>``.

    The model's archive is what the endpoint serves, read by ``Custom::LiveModelData`` when the stack is created
    and whenever the model's other properties change (``infra.stacks.live_model_data``): a deploy that changes
    nothing here leaves the model, its configuration and the endpoint alone whatever the pipeline has made live
    since, and a change that does replace them builds them from the live model, never the first one. Every
    update of the endpoint is a guarded blue/green rollout (``infra.rollout``) that keeps the instance count
    autoscaling has reached. ``model_role`` is the execution role of the endpoint's models (the
    training pipeline passes it to the models it creates).
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack,
                 image: ImageStack, **kwargs) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"GRU4Rec {config.stage}: SageMaker endpoint, autoscaling, alarms",
            **kwargs,
        )
        self.endpoint_name: str = config.endpoint_name
        self.variant_name = VARIANT_NAME
        self.model_role, model_policy = self._model_role(config, storage, image)
        self.model, self.live_model_data = self._model(config, storage, image, model_policy)
        self.challenger_model = self._challenger_model(config, image, model_policy) if config.ab_test else None
        self.endpoint_config = self._endpoint_config(config, storage)
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            retain_all_variant_properties=RETAINED_VARIANT_PROPERTIES["RetainAllVariantProperties"],
        )
        self.endpoint.add_property_override("ExcludeRetainedVariantProperties",
                                            RETAINED_VARIANT_PROPERTIES["ExcludeRetainedVariantProperties"])
        # the same guardrails the training pipeline and the operator CLI's rollback use; not while an A/B test runs:
        # SageMaker's guarded updates keep the variants' names ("Exclusions",
        # https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html), and starting or
        # ending a test adds or removes one
        if not config.ab_test:
            self.endpoint.add_property_override("DeploymentConfig", deployment_config(config))
        # SageMaker executes the template's own DeploymentConfig, not the last update's
        self.endpoint.add_property_override("RetainDeploymentConfig", False)
        # SageMaker writes the endpoint's container logs here: the group exists, encrypted and with its
        # retention, before the first instance starts, and goes only after the endpoint is deleted
        self.log_group = owned_log_group(self, "EndpointLogs", config, storage.key, config.endpoint_log_group_name)
        self.endpoint.node.add_dependency(self.log_group)
        # a serverless endpoint scales itself: Application Auto Scaling has no instance count to set there
        if config.endpoint_autoscaling and not config.serverless:
            self._autoscaling(config)
        self.alarm_topic = self._alarms(config, storage)
        # the first model's record in the registry (the group is the Storage stack's)
        self.first_version = FirstModelVersion(self, "FirstModelVersion", config, image.serve_image_uri,
                                               storage.initial_model.uri, storage.key)
        cdk.CfnOutput(
            self, "EndpointName", value=self.endpoint.attr_endpoint_name, description="SageMaker endpoint of this stage"
        )

    def _model(self, config: AppConfig, storage: StorageStack, image: ImageStack,
               model_policy: iam.Policy) -> tuple[sagemaker.CfnModel, LiveModelData]:
        """The live model: everything but its archive from this template, the archive from what the endpoint serves
        (``infra.stacks.live_model_data``), read again whenever anything else of the model changes."""
        container = primary_container(image.serve_image_uri, "", config.endpoint_name, config.serverless)
        container.pop("ModelDataUrl")
        inputs = {"ExecutionRoleArn": self.model_role.role_arn,
                  "EnableNetworkIsolation": endpoint_network_isolation(config.serverless),
                  "PrimaryContainer": container}
        live = LiveModelData(self, "LiveModelData", config, storage, inputs)
        model = sagemaker.CfnModel(self, "Model", execution_role_arn=inputs["ExecutionRoleArn"],
                                   enable_network_isolation=inputs["EnableNetworkIsolation"])
        model.add_property_override("PrimaryContainer", {**container, "ModelDataUrl": live.model_data})
        model.node.add_dependency(model_policy)
        return model, live

    def _model_role(self, config: AppConfig, storage: StorageStack, image: ImageStack) -> tuple[iam.Role, iam.Policy]:
        """The endpoint's models: read model artifacts (training output and the first model), write data
        capture (instance mode), pull the image, write the endpoint's logs. No session data: Batch Transform has a role
        of its own."""
        role = iam.Role(self, "ModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description=f"Execution role of the GRU4Rec {config.stage} endpoint's models")
        models = storage.objects_arn(MODELS_PREFIX)
        capture = storage.objects_arn(CAPTURE_PREFIX)
        first_model = storage.initial_model.object_arn
        endpoint_logs = log_group_arn(self, config.endpoint_log_group_name)
        statements = [
            iam.PolicyStatement(sid="ReadModelArtifacts", actions=["s3:GetObject"], resources=[models, first_model]),
            iam.PolicyStatement(sid="UseStageKey", resources=[storage.key.key_arn],
                                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]),
            *pull_image_statements(image),
            iam.PolicyStatement(sid="WriteEndpointLogs", resources=[endpoint_logs], actions=[
                "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]),
            read_rollback_alarms_statement(self, config),
        ]
        if not config.serverless:  # a serverless endpoint captures no data
            statements.insert(
                1, iam.PolicyStatement(sid="WriteDataCapture", actions=["s3:PutObject"], resources=[capture])
            )
        if uses_endpoint_volume_key(config):
            statements += volume_key_statements(storage.key)
        statements += read_source_statements(config, self)
        policy = iam.Policy(self, "ModelPolicy", statements=statements)
        policy.attach_to_role(role)
        acknowledge_source_reads(config, policy)
        cdk.Validations.of(policy).acknowledge(
            _ack(
                "AwsSolutions-IAM5[Resource::*]",
                "Only ecr:GetAuthorizationToken uses '*': it has no resource-level permissions.",
            ),
            _ack(
                wildcard_resource_finding(self, models),
                "Training jobs write each new model under models/<job>/: the role reads model artifacts of this prefix "
                "only.",
            ),
            _ack(
                wildcard_resource_finding(self, capture),
                "Data capture writes objects of SageMaker's own naming under capture/: put only, this prefix only.",
            ),
            _ack(
                wildcard_resource_finding(self, endpoint_logs),
                "log-group:<name>:* is how IAM names this one log group (the endpoint's own) and its streams, "
                "which SageMaker names after the instances.",
            ),
        )
        return role, policy

    def _challenger_model(self, config: AppConfig, image: ImageStack, model_policy: iam.Policy) -> sagemaker.CfnModel:
        """The A/B test's second model (``ab_test``): a model.tar.gz of the stage's ``models/``, served by the same
        image under the same role. Its answers name its own ``model_version``; a registry version plugs in here
        as its model data."""
        model = sagemaker.CfnModel(self, "ChallengerModel", execution_role_arn=self.model_role.role_arn,
                                   enable_network_isolation=endpoint_network_isolation(config.serverless))
        model.add_property_override("PrimaryContainer", primary_container(image.serve_image_uri, config.ab_test,
                                                                          config.endpoint_name, config.serverless))
        model.node.add_dependency(model_policy)
        return model

    def _endpoint_config(self, config: AppConfig, storage: StorageStack) -> sagemaker.CfnEndpointConfig:
        endpoint_config = sagemaker.CfnEndpointConfig(
            self, "EndpointConfig", production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT_NAME, model_name=self.model.attr_model_name)],
        )
        # the same variant and settings the training pipeline gives the endpoint configs it creates, and the
        # challenger's beside it while an A/B test runs
        variants = [production_variant(config, self.model.attr_model_name)]
        if self.challenger_model is not None:
            live_weight, challenger_weight = config.ab_split()
            variants = [{**variants[0], "InitialVariantWeight": live_weight},
                        production_variant(config, self.challenger_model.attr_model_name, CHALLENGER_VARIANT,
                                           challenger_weight)]
        endpoint_config.add_property_override("ProductionVariants", variants)
        for key, value in endpoint_config_settings(config, storage).items():
            endpoint_config.add_property_override(key, value)
        if not uses_endpoint_volume_key(config):
            reason = SERVERLESS_STORAGE_REASON if config.serverless else LOCAL_STORAGE_REASON
            # AwsSolutions has no rule on an endpoint config's key; the packs that do are told why there is none
            cdk.Validations.of(endpoint_config).acknowledge(*(
                _ack(f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured", reason)
                for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321")))
        return endpoint_config

    def _autoscaling(self, config: AppConfig) -> None:
        # Application Auto Scaling's own service-linked role (created on first use) rather than a new
        # role: the L2's default role would carry no permissions.
        service_linked_role = iam.Role.from_role_arn(
            self, "AutoScalingServiceRole", mutable=False,
            role_arn=self.format_arn(service="iam", region="", resource="role",
                                     resource_name=f"aws-service-role/{_AUTOSCALING_SERVICE}/{_AUTOSCALING_ROLE}"),
        )
        target = autoscaling.ScalableTarget(
            self, "ScalableTarget", role=service_linked_role, service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=config.endpoint_initial_instance_count, max_capacity=config.endpoint_max_instance_count,
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance", target_value=config.endpoint_invocations_per_instance,
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_out_cooldown=cdk.Duration.minutes(1), scale_in_cooldown=cdk.Duration.minutes(5),
        )

    def _alarms(self, config: AppConfig, storage: StorageStack) -> sns.Topic:
        topic = sns.Topic(self, "AlarmTopic", display_name=f"GRU4Rec {config.stage} endpoint alarms",
                          topic_name=config.topic_name("endpoint-alarms"),
                          master_key=storage.key, enforce_ssl=True)
        if config.notification_email:
            topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))
        alarms_may_publish(topic)
        if config.monthly_budget_usd:
            topic.add_to_resource_policy(self._budgets_may_publish(topic))
        dimensions = {"EndpointName": self.endpoint_name, "VariantName": VARIANT_NAME}
        errors = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map=dimensions,
            statistic="Sum",
            period=cdk.Duration.minutes(5),
        )
        latency = cloudwatch.Metric(namespace="AWS/SageMaker", metric_name="ModelLatency", dimensions_map=dimensions,
                                    statistic="p90", period=cdk.Duration.minutes(5))
        model_errors = self._model_errors(dimensions)
        five_xx, slow, failing = rollback_alarm_names(config)
        # named, so that every rollout can name them for its automatic rollback
        alarms = [
            errors.create_alarm(
                self,
                "ServerErrorsAlarm",
                alarm_name=five_xx,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{self.endpoint_name}: the model container answered with 5xx errors",
            ),
            # ModelLatency is reported in microseconds
            latency.create_alarm(
                self,
                "LatencyAlarm",
                alarm_name=slow,
                threshold=config.model_latency_alarm_ms * 1000,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{self.endpoint_name}: p90 model latency above {config.model_latency_alarm_ms} ms",
            ),
            # invocations the model container failed: 5xx, timeouts and broken answers, not a client's 4xx
            model_errors.create_alarm(
                self,
                "ModelErrorsAlarm",
                alarm_name=failing,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{self.endpoint_name}: invocations the model did not answer",
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            # a rollout names the alarms: they exist before the endpoint does
            self.endpoint.node.add_dependency(alarm)
        return topic

    @staticmethod
    def _model_errors(dimensions: dict[str, str]) -> cloudwatch.MathExpression:
        """Invocations the model failed, per minute: InvocationModelErrors less Invocation4XXErrors.

        InvocationModelErrors counts every invocation "which did not result in 2XX HTTP response. This includes
        4XX/5XX status codes, low-level socket errors, malformed HTTP responses, and request timeouts"
        (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html): a client's bad request (a
        400) would roll a rollout back. A minute without invocations reports neither metric: FILL makes it 0.
        """
        def metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions,
                                     statistic="Sum", period=cdk.Duration.minutes(1))
        return cloudwatch.MathExpression(
            expression="FILL(modelErrors, 0) - FILL(clientErrors, 0)",
            label="Model errors other than 4xx",
            using_metrics={
                "modelErrors": metric("InvocationModelErrors"),
                "clientErrors": metric("Invocation4XXErrors"),
            },
            period=cdk.Duration.minutes(1),
        )

    def _budgets_may_publish(self, topic: sns.Topic) -> iam.PolicyStatement:
        """The stage's budget (``infra.stacks.monitoring``) notifies this topic: AWS Budgets may publish, for
        this account's budgets only ("Creating an Amazon SNS topic for budget notifications",
        https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html)."""
        budgets_arn = self.format_arn(service="budgets", region="", resource="*",
                                      arn_format=cdk.ArnFormat.NO_RESOURCE_NAME)
        return iam.PolicyStatement(
            sid="BudgetsPublish", principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
            actions=["sns:Publish"], resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": self.account}, "ArnLike": {"aws:SourceArn": budgets_arn}},
        )


def _ack(rule: str, reason: str) -> cdk.Acknowledgment:
    return cdk.Acknowledgment(id=rule, reason=reason)


def uses_endpoint_volume_key(config: AppConfig) -> bool:
    """Whether the endpoint's instances get the stage's key for their storage volume (none on serverless)."""
    return not config.serverless and uses_volume_key(config.endpoint_instance_type)


def production_variant(config: AppConfig, model_name: str, name: str = VARIANT_NAME, weight: int = 1) -> dict:
    """A variant of the endpoint (the live one unless named), as CloudFormation and CreateEndpointConfig both spell
    it: instances, or a serverless variant (memory and concurrency instead of an instance type and count)."""
    variant: dict = {"VariantName": name, "ModelName": model_name, "InitialVariantWeight": weight}
    if config.serverless:
        variant["ServerlessConfig"] = config.serverless_config()
    else:
        variant.update(InstanceType=config.endpoint_instance_type,
                       InitialInstanceCount=config.endpoint_initial_instance_count)
    return variant


def endpoint_config_settings(config: AppConfig, storage: StorageStack) -> dict:
    """``DataCaptureConfig`` and ``KmsKeyId`` of the endpoint's configurations, where the mode has them:
    serverless endpoints support no data capture ("Feature exclusions",
    https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html) and have no volume to encrypt."""
    if config.serverless:
        return {}
    settings = {"DataCaptureConfig": data_capture_config(config, storage)}
    if uses_endpoint_volume_key(config):
        settings["KmsKeyId"] = volume_key(storage.key, config.endpoint_instance_type)
    return settings


def data_capture_config(config: AppConfig, storage: StorageStack) -> dict:
    """The endpoint's data capture, as CloudFormation and SageMaker's CreateEndpointConfig both spell it."""
    return {
        "EnableCapture": config.data_capture_percent > 0,
        # SageMaker wants a percentage from 1 to 100 even while capture is off
        "InitialSamplingPercentage": max(config.data_capture_percent, 1),
        "DestinationS3Uri": storage.bucket.s3_url_for_object(CAPTURE_PREFIX.rstrip("/")),
        "KmsKeyId": storage.key.key_arn,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
    }
