"""Errors that a user can fix: each carries one line that names the file, row, field or value at fault.

The CLI and UI print the message of a `StudioError` as it is, without a traceback. Anything else is a bug
and is reported with its type, and its traceback goes to the run's train.log.
"""


class StudioError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ConfigError(StudioError):
    """A run config key, value or combination that is not allowed."""


class DataError(StudioError):
    """A dataset file or row that cannot be used."""


class ModelError(StudioError):
    """A model that cannot be found or loaded as asked."""


class RewardError(StudioError):
    """A reward source (a built-in, a Python reward function, a reward run) that cannot score as configured."""
