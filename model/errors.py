"""Errors that reach the user as one clear line (what is wrong, which file, what was expected).

The command line turns each into a message and an exit code; nothing below it prints tracebacks
for these.
"""


class EnhancementError(Exception):
    """Base class of the errors the command line reports without a traceback."""

    exit_code = 1


class UsageError(EnhancementError):
    """An option value the program cannot take (named in the message)."""

    exit_code = 2


class InputError(EnhancementError):
    """An input volume or input folder is missing, unreadable or unusable."""

    exit_code = 2


class ResultError(EnhancementError):
    """The computed result is unusable (for instance non-finite voxels); nothing of the case is written."""

    exit_code = 1


class WeightsError(EnhancementError):
    """The network weights are missing, corrupt, or do not match their manifest."""

    exit_code = 3


class OutputError(EnhancementError):
    """The output location cannot be written."""

    exit_code = 4


class DeviceError(EnhancementError):
    """The requested compute device is not available or ran out of memory."""

    exit_code = 5
