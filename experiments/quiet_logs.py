"""Keeps the terminal readable: drops orbax's per-checkpoint INFO lines."""

import logging as std_logging

from absl import logging


class _QuietOrbax(std_logging.Filter):

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or 'orbax' not in (
        record.pathname)


def install() -> None:
  """Filters orbax INFO records out of absl's handler; warnings still show."""
  logging.get_absl_handler().addFilter(_QuietOrbax())
