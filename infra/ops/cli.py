"""The operator CLI's command line: ``python -m infra.ops``'s commands, their options and their help.

What each command does is in ``infra.ops.__main__`` (its local checks, then its AWS calls).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from infra.layout import CHALLENGER_VARIANT, LIVE_VARIANT
from infra.ops import first_model, smoke

AB_VARIANTS = (LIVE_VARIANT, CHALLENGER_VARIANT)

DESCRIPTION = """\
Operate a deployed GRU4Rec stage. Resource names come from the outputs of the stage's
CloudFormation stacks (Gru4Rec-<Stage>-Storage, -Image, -Endpoint, -Api, -Training, -Batch);
credentials and region come from the usual AWS environment variables or profile."""

EPILOG = """\
examples:
  python -m infra.ops train --upload-data demo_output/data -p epochs=5 --wait
  python -m infra.ops train --one-off -p loss=bpr-max -p learning_rate=0.05
  python -m infra.ops tune --space bpr-max --trials 30 --parallel 3 --max-runtime 12h
  python -m infra.ops tune --apply tune-dev-2612071345
  python -m infra.ops score sessions.jsonl --wait
  python -m infra.ops score-events clicks/ --run 2026-11-29
  python -m infra.ops recommend 1000 1001 -k 10 --exclude-seen
  python -m infra.ops status --stage prod
  python -m infra.ops report --days 14
  python -m infra.ops ab promote Challenger
  python -m infra.ops approve 7 --stage prod --note "checked the evaluation report"
  python -m infra.ops reject 8 --stage prod --reason "catalogue drift since the window"
  python -m infra.ops promote 12 --stage dev --to prod
  python -m infra.ops rollback --to-version 5
  python -m infra.ops cleanup --yes
  python -m infra.ops smoke --region eu-west-1

--stage, --region and --profile go before or after the command. Everything that can be
checked without AWS (arguments, hyperparameters, the sessions file, the request) is checked
first, with the container's own checks."""


def _add_location(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--stage, --region, --profile; on the sub-commands without defaults, so the top level's stay
    unless they are given after the command."""
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--stage", default=default("dev"), help="stage to operate on (default: dev)")
    parser.add_argument("--region", default=default(None),
                        help="AWS region (default: AWS_DEFAULT_REGION, the profile's region, else AWS_REGION)")
    parser.add_argument("--profile", default=default(None),
                        help="AWS profile (default: AWS_PROFILE / default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.ops",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_location(parser, defaults=True)
    location = argparse.ArgumentParser(add_help=False)
    _add_location(location, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands, location)
    _add_tune(commands, location)
    _add_score(commands, location)
    _add_score_events(commands, location)
    _add_recommend(commands, location)
    _add_package_model(commands)
    commands.add_parser(
        "status",
        parents=[location],
        help="recent training and batch executions, the endpoint, and the model registry's versions",
        description="Show the last training and batch executions (status, start, job), the "
        "endpoint's status and the model it serves, and the stage's model registry: its last versions "
        "(training job, evaluation figures, approval and its note, rollbacks), the live one marked.",
    )
    back = commands.add_parser(
        "rollback",
        parents=[location],
        help="put an earlier Approved registry version live again, through the rollout guardrails",
        description="Roll the endpoint back to the newest Approved version of the stage's model registry "
        "older than the live one, or to the one --to-version names, through the training pipeline's "
        "guarded rollout (blue/green, automatic rollback on alarms); once the endpoint serves it, the "
        "version records the rollback (status shows it). Batch scoring reads the endpoint's model, so it "
        "follows. A Rejected or pending version is refused.",
    )
    back.add_argument("--to-version", metavar="N",
                      help="the version number (or ARN) of the stage's model package group to put live")
    _add_approval(commands, location)
    tidy = commands.add_parser(
        "cleanup",
        parents=[location],
        help="list (and with --yes delete) models/endpoint configs no longer in use",
        description="Find the SageMaker models and endpoint configs that training runs created "
        "for this stage (tagged project=gru4rec, stage=<stage>) which nothing uses any more "
        "(not the endpoint, not a running transform job, not a stack's own, not the models of the "
        "last model_keep_count Approved registry versions before the live one), and delete them "
        "with --yes. After `cdk destroy`, it removes the last ones.",
    )
    tidy.add_argument("--yes", action="store_true", help="delete them (default: only list)")
    _add_report(commands, location)
    _add_ab(commands, location)
    _add_smoke(commands, location)
    return parser


SMOKE_DESCRIPTION = """\
Check a real account end to end on a throw-away stage, then delete it. Never run by the tests.

Steps: deploy a new stage named smoke<6 random characters> (cdk deploy --all: needs Docker, the
bootstrapped account, `make setup` and `make model-artifact`); upload the built-in data (the
folder `make demo` writes; generated there when missing) to the training prefixes; run the
training pipeline (3 epochs) and wait for it; score 100 test sessions as a JSON-lines Batch
Transform and check every output line; make 5 signed API calls and check every answer (k items,
ids the training data holds, no repeats, finite scores, best first); print a step-by-step report.

Cost: about one hour of the stage. The training and transform jobs' billable time and the
endpoint's instance time are priced at the account's region's on-demand list prices from the AWS
Price List API (pricing:GetProducts; "price unavailable" where it cannot be asked), typically well
under $1 with the default instance types; API Gateway, S3, KMS and logs add cents.

Teardown, also after a failed step or Ctrl-C (not with --keep): delete the stage's stacks, empty
its kept buckets (every object version and delete marker) and delete them, schedule its KMS key's
deletion (7 days), delete the models and endpoint configs the pipeline made and the stage's SSM
parameters. --teardown STAGE does just that for a stage a --keep run left."""


def _add_report(commands, location: argparse.ArgumentParser) -> None:
    attribution = commands.add_parser(
        "report",
        parents=[location],
        help="which model earns the clicks: captured answers joined to what the sessions did next",
        description="Run the attribution query on Athena over the endpoint's captured answers of the last "
        "N whole days (UTC) and the event runs that arrived since: per production variant, model version "
        "and day, the hit rate (the next item was recommended), its mean rank and MRR, clicks on recommended "
        "items per answer, catalogue coverage and the share of requested items the model did not know; "
        "with two variants, the A/B comparison. Needs data capture on (data_capture_percent); Athena bills "
        "the bytes it scans.",
    )
    attribution.add_argument("--days", type=int, default=7, help="whole days before today to report (1-90, default 7)")


def _add_ab(commands, location: argparse.ArgumentParser) -> None:
    test = commands.add_parser("ab", parents=[location], help="end the endpoint's A/B test (context key ab_test)",
                               description="End the A/B test the context key ab_test started.")
    actions = test.add_subparsers(dest="ab_action", required=True, metavar="ACTION")
    promote = actions.add_parser(
        "promote", parents=[location], help="keep one variant's model and drop the other variant",
        description="Keep VARIANT's model: promoting Challenger rolls AllTraffic to the challenger's model through "
        "the training pipeline's guarded rollout (rolled back on the stage's alarms), then drops the Challenger "
        "variant and records the challenger as the live model; promoting AllTraffic only drops the challenger. "
        "Then remove ab_test from the context and deploy.",
    )
    promote.add_argument("variant", choices=AB_VARIANTS, metavar="VARIANT", help=" or ".join(AB_VARIANTS))


def _add_approval(commands, location: argparse.ArgumentParser) -> None:
    approve = commands.add_parser(
        "approve", parents=[location],
        help="approve a model version in the stage's Model Registry: it then goes live through the guarded rollout",
        description="Set a version of the stage's model package group (gru4rec-<stage>) to Approved. The registry's "
        "state-change event starts the training pipeline's guarded rollout of it, once; approving in Studio or "
        "with the API does the same.",
    )
    approve.add_argument("version", metavar="VERSION", help="the version's number (as status lists it) or ARN")
    approve.add_argument("--note", help="the approval description (default: that this command approved it)")
    reject = commands.add_parser(
        "reject", parents=[location], help="reject a model version in the stage's Model Registry, saying why",
        description="Set a version of the stage's model package group to Rejected with the reason as its approval "
        "description. The live version cannot be rejected: roll back first.",
    )
    reject.add_argument("version", metavar="VERSION", help="the version's number (as status lists it) or ARN")
    reject.add_argument("--reason", required=True, help="why it is rejected (recorded in the registry)")
    _add_promote(commands, location)


def _add_promote(commands, location: argparse.ArgumentParser) -> None:
    promote = commands.add_parser(
        "promote", parents=[location],
        help="give an Approved version of this stage to another stage, where it waits for a person's approval",
        description="Register an Approved version of --stage's model package group (a number, or the ARN of a version "
        "of another account's gru4rec-<stage> group) in the --to stage's group as PendingManualApproval: the same "
        "archive, the same image digest, its evaluation report and metadata, and a link to the source version. "
        "Approving it there (approve N --stage <to>) rolls it out through that stage's guarded rollout. In one "
        "account the archive is copied into the target's bucket and the image must be in the target's repository "
        "under the same digest; across accounts (run with the target account's credentials) nothing is copied: "
        "the target reads the source's, as docs/deploy.md sets up.",
    )
    promote.add_argument("version", metavar="VERSION", help="the version's number in --stage's group, or its ARN")
    promote.add_argument("--to", required=True, metavar="STAGE", help="the stage that gets the version (e.g. prod)")
    promote.add_argument("--image", help="an image of the target stage's repository to run the version with, when "
                                         "the target does not hold the version's own image")


def _add_smoke(commands, location: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "smoke", parents=[location], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="deploy a throw-away stage, train, score, call the API, check every answer, price it, delete it",
        description=SMOKE_DESCRIPTION,
    )
    run.add_argument("--data", type=Path, default=smoke.DEFAULT_DATA, metavar="DIR",
                     help="the built-in data's folder (default: demo_output/data; generated when it has no train file)")
    run.add_argument("--keep", action="store_true", help="keep the stage afterwards, for debugging")
    run.add_argument("--teardown", metavar="STAGE", help="only tear down a smoke stage a --keep run left")


def _add_train(commands, location: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train",
        parents=[location],
        help="start the training state machine (or a one-off training job)",
        description="Start the training state machine: train on the data window of "
        "s3://<bucket>/training/events/dt=YYYY-MM-DD/, "
        "check the quality gate, roll the endpoint to the new model. With --one-off, run only "
        "a training job (same image, role and instance type) and leave the endpoint alone.",
    )
    train.add_argument(
        "-p", "--hyperparameter", action="append", default=[], metavar="NAME=VALUE",
        help="training parameter passed to the container (repeatable), e.g. -p epochs=5",
    )
    train.add_argument(
        "--no-test-channel", action="store_true",
        help="train without the test channel (training/test/): no evaluation metrics",
    )
    train.add_argument(
        "--upload-data", type=Path, metavar="DIR",
        help="first upload DIR/train.* into the day folder training/events/dt=DAY/ (then its _SUCCESS "
        "marker), or DIR's own days (day folders dt=YYYY-MM-DD/, daily files YYYY-MM-DD.csv.gz) each into "
        "its day folder, and DIR/test.* to training/test/, replacing what those hold",
    )
    train.add_argument(
        "--day", metavar="YYYY-MM-DD",
        help="the day folder --upload-data files into (default: yesterday, UTC: the last day of the data "
        "window of a run started today)",
    )
    train.add_argument("--wait", action="store_true", help="wait until it has finished")
    one_off = train.add_argument_group("one-off training job (CreateTrainingJob)")
    one_off.add_argument("--one-off", action="store_true", help="run a single training job")
    one_off.add_argument("--role", help="execution role ARN (default: the state machine's)")
    one_off.add_argument("--image", help="training image URI (default: the state machine's)")
    one_off.add_argument("--instance-type", help="instance type (default: the state machine's)")


def _add_tune(commands, location: argparse.ArgumentParser) -> None:
    tune = commands.add_parser(
        "tune",
        parents=[location],
        help="start a SageMaker hyperparameter tuning job, or apply a finished one's best settings",
        description="Start a SageMaker hyperparameter tuning job (Bayesian, early stopping on) over a tuning space "
        "file: it maximises validation:recall@20 on the stage's data window, its training jobs made like the "
        "training state machine's (image, role, instance type, KMS keys, tags; on demand). With --apply JOB, make "
        "that finished tuning job's best settings the stage's training parameters: every later training run "
        "(scheduled, data-triggered, train) uses them, and its model's metadata.json names the tuning job.",
    )
    tune.add_argument("--space", default="xe",
                      help="tuning space: a built-in one (xe, bpr-max) or a JSON file (default: xe)")
    tune.add_argument("--trials", type=int, default=20, help="training jobs in all (default: 20)")
    tune.add_argument("--parallel", type=int, default=2, help="training jobs at a time (default: 2)")
    tune.add_argument("--max-runtime", metavar="DURATION",
                      help="stop the whole tuning job after this long (90m, 12h, 2d; default: no limit but the trials)")
    tune.add_argument("--role", help="execution role ARN (default: the state machine's)")
    tune.add_argument("--image", help="training image URI (default: the state machine's)")
    tune.add_argument("--instance-type", help="instance type (default: the state machine's)")
    tune.add_argument("--apply", metavar="TUNING_JOB",
                      help="make this finished tuning job's best settings the stage's training parameters")


def _add_score(commands, location: argparse.ArgumentParser) -> None:
    score = commands.add_parser(
        "score",
        parents=[location],
        help="upload a JSON-lines sessions file for batch scoring",
        description="Check a JSON-lines file (one {\"session_id\": ..., \"items\": [...]} per "
        "line) and upload it to sessions/incoming/, which starts a batch transform; the scores "
        "appear in sessions/scored/<name>.jsonl.out.",
    )
    score.add_argument("file", type=Path, help="sessions file, named <name>.jsonl")
    score.add_argument("--name", help="object name in the bucket instead of the file's name")
    score.add_argument(
        "--filters", type=Path, metavar="FILE.json",
        help='business rules for every session of the file: {"exclude_items": [...], "include_items": [...]} '
        "(either or both; a line's own lists replace them); uploaded as <name>.filters.json beside it",
    )
    score.add_argument("--wait", action="store_true", help="wait for the scored file")
    score.add_argument(
        "--timeout", type=float, default=3600.0, metavar="SECONDS",
        help="how long --wait waits (default: 3600)",
    )


def _add_score_events(commands, location: argparse.ArgumentParser) -> None:
    score = commands.add_parser(
        "score-events",
        parents=[location],
        help="score raw click events: grouped into sessions on Athena, then Batch Transform",
        description="Copy event files (a local file or folder, or an s3:// URI; .tsv/.csv/.txt, gzip or not, "
        "the columns and separator the stage's events table was deployed with) to events/incoming/<run>/, then "
        "put <run>/_SUCCESS, which starts the events pipeline; the scores appear in sessions/scored/<run>/ "
        "with summary.json.",
    )
    score.add_argument("source", help="event file, folder of event files, or s3:// URI")
    score.add_argument("--run", help="the run's name (default: events-<UTC time>); a run is scored once")


def _add_recommend(commands, location: argparse.ArgumentParser) -> None:
    recommend = commands.add_parser(
        "recommend",
        parents=[location],
        help="ask the API for the next items of one session",
        description="POST the session's items to the stage's API (API key and SigV4 "
        "signature added) and print the recommendations as a table.",
    )
    recommend.add_argument("items", nargs="+", metavar="ITEM", help="item ids, oldest first")
    recommend.add_argument("-k", type=int, default=20, help="how many items (1-1000, default 20)")
    recommend.add_argument(
        "--exclude-seen", action="store_true", help="leave out the session's own items"
    )


def _add_package_model(commands) -> None:
    package = commands.add_parser(
        "package-model",
        help="package a locally trained model as the stack's first model (no AWS call)",
        description=first_model.__doc__.split("\n\n")[1].replace("\n", " "),
    )
    package.add_argument("model_dir", type=Path, help="the model directory model_code.commands.train wrote")
    package.add_argument("--out", type=Path, default=first_model.DEFAULT_ARCHIVE,
                         help="the archive to write (default: build/model.tar.gz, cdk.json's initial_model_artifact)")
    package.add_argument("--version", dest="model_version", default=None,
                         help="the version its answers name (default: cdk.json's initial_model_version)")
