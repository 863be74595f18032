"""The few exceptions featurekit raises; the CLI turns each into one line and an exit code."""


class FeaturekitError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 2


class CheckFailed(FeaturekitError):
    """A check ran and found a problem (exit code 1)."""

    exit_code = 1
