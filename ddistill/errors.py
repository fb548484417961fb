"""Errors a user can act on: each message names the field, file or folder.

Command-line entry points print them as one line (experiments/flags.py).
"""


class UserError(Exception):
  """A problem with the user's config, data, workdir or disk, not a bug."""


class ConfigError(UserError, ValueError):
  """A config field has a value that is not allowed."""


class DataError(UserError, ValueError):
  """A data file is missing, truncated or not in the expected format."""


class CheckpointError(UserError, RuntimeError):
  """No checkpoint restores, or one could not be written."""


class WorkdirConflict(UserError, RuntimeError):
  """The workdir holds results made with a different config."""


class Diverged(UserError, FloatingPointError):
  """A loss or weights turned NaN or infinite, most often from a learning
  rate too high; the last checkpoint is kept as it was."""


class Stopped(Exception):
  """The run was told to stop (SIGTERM) and saved a checkpoint to resume
  from; not an error, so not a UserError."""
