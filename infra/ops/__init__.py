"""Operator CLI for a deployed stage: `python -m infra.ops --help`.

Reads every name it needs from the deployed stacks' CloudFormation outputs, so nothing is
configured twice. Uses boto3 only; it imports nothing from the CDK app, the model code or the
serving code.
"""
