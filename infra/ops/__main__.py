"""`python -m infra.ops`: train, score, recommend and check on a deployed stage.

The command line is ``infra.ops.cli``; here each command's local checks (before any AWS call) and what it does.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from infra.attribution import MAX_DAYS
from infra.ops import (
    ab,
    cleanup,
    event_files,
    event_runs,
    first_model,
    live_model,
    promotion,
    registry,
    scoring,
    smoke,
    status,
    teardown,
    training,
    tuning,
)
from infra.ops import recommend as recommending
from infra.ops import report as reporting
from infra.ops.cli import build_parser
from infra.ops.deployment import load_deployment, validate_stage
from infra.ops.errors import OpsError

if TYPE_CHECKING:
    import boto3


def run_package_model(args) -> int:
    version = args.model_version or first_model.configured_version()
    items = first_model.package(args.model_dir, args.out, version)
    print(f"wrote {args.out}: {items} items, model_version {version}")
    if version != first_model.configured_version():
        print(f"set initial_model_version to {version} in cdk.json (or -c initial_model_version={version}): the "
              f"stack uploads its first model under that version (docs/deploy.md, step 1)", file=sys.stderr)
    return 0


def make_session(args: argparse.Namespace) -> boto3.Session:
    """A session in --region, else boto3's region (AWS_DEFAULT_REGION, the profile's), else AWS_REGION, which
    boto3 does not read but other AWS tools (and Lambda) set. boto3 is imported here, not by --help."""
    import boto3

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    if not session.region_name and os.environ.get("AWS_REGION"):
        session = boto3.Session(profile_name=args.profile, region_name=os.environ["AWS_REGION"])
    if not session.region_name:
        raise OpsError("no AWS region: pass --region, or set AWS_DEFAULT_REGION (or AWS_REGION), "
                       "or use a profile that names a region")
    return session


def check_train(args) -> None:
    args.hyperparameters = training.parse_hyperparameters(args.hyperparameter)
    if not args.one_off and (args.role or args.image or args.instance_type):
        raise OpsError("--role, --image and --instance-type are for --one-off jobs only")
    if args.day is not None and not args.upload_data:
        raise OpsError("--day is for --upload-data only")
    if args.upload_data:
        files = training.data_files(args.upload_data)
        if args.day is not None and "train" not in files:
            raise OpsError("--day is for a train.* file: the folder's days name themselves")
        args.upload_day = training.upload_day(args.day)


def check_tune(args) -> None:
    if args.apply:
        extra = [flag for flag, value in (("--role", args.role), ("--image", args.image),
                                          ("--instance-type", args.instance_type), ("--max-runtime", args.max_runtime))
                 if value]
        if extra:
            raise OpsError(f"{', '.join(extra)}: for starting a tuning job, not with --apply")
        return
    args.tuning_space = tuning.read_space(args.space)
    max_runtime = tuning.parse_duration(args.max_runtime) if args.max_runtime else None
    args.limits = tuning.TuningLimits(args.trials, args.parallel, max_runtime)
    try:
        tuning.tuning_job_config(args.tuning_space, args.trials, args.parallel, max_runtime)
    except tuning.TuningError as error:
        raise OpsError(str(error)) from None


def check_score(args) -> None:
    scoring.object_name(args.file, args.name)
    scoring.validate_sessions_file(args.file)
    if args.filters is not None:
        scoring.validate_filters_file(args.filters)


def check_recommend(args) -> None:
    recommending.request_body(args.items, args.k, args.exclude_seen)


def run_train(args, session, deployment) -> int:
    hyperparameters = args.hyperparameters
    test_channel = not args.no_test_channel
    stepfunctions = session.client("stepfunctions")
    settings = None
    if args.one_off:
        settings = training.read_one_off_settings(
            stepfunctions, deployment.training_state_machine_arn,
            role_arn=args.role, image_uri=args.image, instance_type=args.instance_type,
        )
    if args.upload_data:
        for uri in training.upload_training_data(
            session.client("s3"), deployment.data_bucket, args.upload_data, args.upload_day
        ):
            print(f"uploaded {uri}")
    if settings:
        # as the state machine does: the stage's defaults, then the applied tuning job's settings, then -p
        tuned = tuning.applied_settings(session.client("ssm"), deployment.stage)
        settings = dataclasses.replace(settings, default_hyperparameters={**settings.default_hyperparameters, **tuned})
        return _one_off(args, session, deployment, settings, hyperparameters, test_channel)
    arn = training.start_training(
        stepfunctions, deployment.training_state_machine_arn, hyperparameters, test_channel
    )
    print(f"started {arn}")
    if not args.wait:
        return 0
    described = training.wait_for_execution(stepfunctions, arn)
    if described["status"] == "SUCCEEDED":
        return 0
    print(f"{described.get('error', '')}: {described.get('cause', '')}", file=sys.stderr)
    return 1


def _one_off(args, session, deployment, settings, hyperparameters, test_channel) -> int:
    job = training.start_one_off_training(
        session.client("sagemaker"), deployment.stage, deployment.data_bucket, settings, hyperparameters,
        deployment.train_window_days, test_channel,
    )
    print(f"started training job {job}")
    if not args.wait:
        return 0
    described = training.wait_for_training_job(session.client("sagemaker"), job)
    if described["TrainingJobStatus"] != "Completed":
        print(described.get("FailureReason", "no failure reason given"), file=sys.stderr)
        return 1
    print(f"model: {described['ModelArtifacts']['S3ModelArtifacts']}")
    return 0


def run_tune(args, session, deployment) -> int:
    stepfunctions, sagemaker = session.client("stepfunctions"), session.client("sagemaker")
    if args.apply:
        described = stepfunctions.describe_state_machine(stateMachineArn=deployment.training_state_machine_arn)
        defaults = training.default_hyperparameters(json.loads(described["definition"]))
        applied = tuning.apply_best(sagemaker, session.client("ssm"), deployment.stage, args.apply, defaults)
        print(f"{tuning.tuned_parameter_name(deployment.stage)}: {json.dumps(applied, sort_keys=True)}")
        print("every later training run of the stage uses these settings (a run's own -p values override them)")
        return 0
    settings = training.read_one_off_settings(
        stepfunctions, deployment.training_state_machine_arn,
        role_arn=args.role, image_uri=args.image, instance_type=args.instance_type,
    )
    request = tuning.tuning_request(deployment.stage, deployment.data_bucket, settings, args.tuning_space,
                                    args.limits, deployment.train_window_days)
    print(f"started tuning job {tuning.start_tuning(sagemaker, request)}")
    return 0


def check_report(args) -> None:
    if not 1 <= args.days <= MAX_DAYS:
        raise OpsError(f"--days: from 1 to {MAX_DAYS}, got {args.days}")


def run_score(args, session, deployment) -> int:
    s3 = session.client("s3")
    submission = scoring.submit_sessions(s3, deployment.data_bucket, args.file, args.name, args.filters)
    print(f"uploaded {submission.sessions} sessions to {submission.input_uri}")
    print(f"scores will appear at {submission.output_uri}")
    if args.wait:
        scoring.wait_for_output(s3, submission, timeout_seconds=args.timeout)
        print(f"ready: {submission.output_uri}")
    return 0


def check_score_events(args) -> None:
    if not args.source.startswith("s3://"):
        event_runs.local_files(Path(args.source))


def run_score_events(args, session, deployment) -> int:
    layout = event_files.table_layout(session.client("glue"), deployment.stage)
    run = event_runs.submit_events(session.client("s3"), deployment.data_bucket, args.source, args.run, layout)
    print(f"run {run.run}: {len(run.files)} event files and the _SUCCESS marker uploaded")
    print(f"scores will appear in {run.scored_uri}, the summary at s3://{run.bucket}/{run.summary_key}")
    return 0


def run_recommend(args, session, deployment) -> int:
    result = recommending.recommend(session, deployment, args.items, args.k, args.exclude_seen)
    print(recommending.format_table(result))
    return 0


def run_status(args, session, deployment) -> int:
    print(status.render(status.collect_status(session, deployment)))
    print(registry.render(registry.versions(session, deployment), registry.live_version_arn(session, deployment)))
    return 0


def run_approve(args, session, deployment) -> int:
    version = registry.approve(session, deployment, args.version, args.note)
    print(f"version {version.number} ({version.training_job or version.arn}) is Approved: its approval starts the "
          f"guarded rollout of {deployment.endpoint_name}; follow it with "
          f"python -m infra.ops status --stage {deployment.stage}")
    return 0


def run_reject(args, session, deployment) -> int:
    version = registry.reject(session, deployment, args.version, args.reason)
    print(f"version {version.number} is Rejected: {version.approval_description}")
    return 0


def run_report(args, session, deployment) -> int:
    print(reporting.report(session, deployment, args.days))
    return 0


def run_ab(args, session, deployment) -> int:
    done = ab.promote(session, deployment, args.variant)
    print(f"{args.variant} promoted: {deployment.endpoint_name} serves {done.model_data} (model {done.model_name}) "
          f"alone; remove ab_test from the context and deploy")
    return 0


def run_promote(args, session) -> int:
    """The target's stacks (``--to``) are loaded; the source stage (``--stage``) may live in another account."""
    target = load_deployment(session, validate_stage(args.to))
    done = promotion.promote(session, args.stage, args.version, target, args.image)
    where = "copied into" if done.copied else "read from the source account by"
    print(f"version {done.target_version} of gru4rec-{target.stage} is PendingManualApproval ({done.source_arn}; "
          f"image {done.image}; archive {done.model_data}, {where} {target.stage})")
    print(f"approve it to roll it out: python -m infra.ops approve {done.target_version} --stage {target.stage}")
    return 0


def run_rollback(args, session, deployment) -> int:
    target, live = live_model.rollback_target(session, deployment, args.to_version)
    print(f"rolling {deployment.endpoint_name} back to version {target.number} "
          f"({target.training_job or 'first model'}, {target.model_data}) through the guarded rollout")
    done = live_model.roll_back(session, deployment, target, live)
    print(f"live: version {target.number} (execution {done.execution}; recorded on the version)")
    return 0


def run_cleanup(args, session, deployment) -> int:
    leftovers = cleanup.find_leftovers(session, deployment)
    for name in leftovers.endpoint_configs:
        print(f"endpoint config {name}")
    for name in leftovers.models:
        print(f"model {name}")
    if not (leftovers.models or leftovers.endpoint_configs):
        print("nothing to clean up")
    elif args.yes:
        cleanup.delete_leftovers(session.client("sagemaker"), leftovers)
        print("deleted")
    else:
        print("not in use; run again with --yes to delete them")
    return 0


def run_smoke(args, session) -> int:
    if args.teardown:
        for line in teardown.teardown(session, validate_stage(args.teardown)):
            print(line)
        return 0
    data = smoke.read_smoke_data(smoke.ensure_builtin_data(args.data))
    deploy = lambda stage: smoke.cdk_deploy(stage, session.region_name, args.profile)  # noqa: E731
    report = smoke.run_smoke(session, data, smoke.Seams(deploy=deploy), keep=args.keep)
    print(report.render())
    return 1 if report.failed else 0


LOCAL_CHECKS = {"train": check_train, "tune": check_tune, "score": check_score, "score-events": check_score_events,
                "recommend": check_recommend, "report": check_report}
"""What each command checks before it makes any AWS call."""

LOCAL_COMMANDS = {"package-model": run_package_model}
"""The commands that make no AWS call at all."""

COMMANDS = {
    "train": run_train,
    "tune": run_tune,
    "score": run_score,
    "score-events": run_score_events,
    "recommend": run_recommend,
    "status": run_status,
    "rollback": run_rollback,
    "approve": run_approve,
    "reject": run_reject,
    "cleanup": run_cleanup,
    "report": run_report,
    "ab": run_ab,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        validate_stage(args.stage)
        LOCAL_CHECKS.get(args.command, lambda _: None)(args)
        if args.command in LOCAL_COMMANDS:
            return LOCAL_COMMANDS[args.command](args)
        session = make_session(args)
        if args.command == "smoke":
            return run_smoke(args, session)
        if args.command == "promote":
            return run_promote(args, session)
        deployment = load_deployment(session, args.stage, allow_none=args.command == "cleanup")
        return COMMANDS[args.command](args, session, deployment)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
    except NoCredentialsError:
        print("error: no AWS credentials found (aws configure, AWS_PROFILE, ...)", file=sys.stderr)
    except ClientError as error:
        problem = error.response["Error"]
        print(f"error: AWS said {problem.get('Code')}: {problem.get('Message')}", file=sys.stderr)
    except BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
