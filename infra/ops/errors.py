"""The one error type the operator commands raise for problems the operator can fix."""


class OpsError(Exception):
    """A problem with the input or the deployment, with a message that says what to do."""
