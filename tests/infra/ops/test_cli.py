"""`infra.ops.cli`: the operator CLI's command line (its commands' help and their errors:
tests/infra/ops/test_main.py)."""

from infra.ops.cli import build_parser


def test_the_stage_after_the_command_wins_and_region_is_kept(monkeypatch):
    args = build_parser().parse_args(["--stage", "dev", "--region", "eu-west-1", "status", "--stage", "prod"])
    assert (args.stage, args.region, args.profile) == ("prod", "eu-west-1", None)
    args = build_parser().parse_args(["score", "f.jsonl"])
    assert (args.stage, args.region) == ("dev", None)
