r"""What every experiments/*.py main shares: its common flags and how it runs
(benchmarks/outer_step.py, dot_floor.py and eval_convs.py run through it too).

A main defines its own flags, the common ones with `define`, and hands its
function to `run`:

  _CONFIG = config_flags.DEFINE_config_file('config', ...)
  _RUN = flags.define()  # --workdir, --fresh, --distributed, --traceback.

  def main(argv):
    del argv
    train.train_and_evaluate(_CONFIG.value, _RUN.workdir.value,
                             fresh=_RUN.fresh.value)

  if __name__ == '__main__':
    flags.run(main)

`run` keeps the terminal readable (orbax's per-checkpoint INFO lines
dropped), joins a multi-process run under --distributed, and ends on a
problem the user can fix (a bad flag or config, missing or broken data, a
workdir of another run, a full disk) with one line, `error: ...`, and exit
status 2. --traceback shows the whole traceback instead. A run stopped by
SIGTERM (checkpoint saved) ends with one line, `stopped: ...`, status 143.
"""

import logging as std_logging
import signal
import sys
from typing import Callable, NamedTuple, Optional

from absl import app
from absl import flags
from absl import logging
import jax

from ddistill import errors

# Each names the field, file or folder at fault in its message. OSError: a
# full disk or a missing folder, say (atomic_files names the file it was
# writing).
USER_ERRORS = (errors.UserError, OSError)
USER_ERROR_STATUS = 2
# The shell's status for a process ended by SIGTERM, which is what asked.
STOPPED_STATUS = 128 + signal.SIGTERM


class Flags(NamedTuple):
  """The common flags of a main (absl FlagHolders; None: not defined)."""
  workdir: Optional[flags.FlagHolder]
  fresh: Optional[flags.FlagHolder]
  traceback: flags.FlagHolder


def define(workdir: Optional[str] = 'Folder for outputs; rerunning the '
           'same command resumes what it holds.') -> Flags:
  """Defines --traceback, and unless `workdir` (its help) is None,
  --workdir (required), --fresh and --distributed with its cluster flags."""
  traceback = flags.DEFINE_bool(
      'traceback', False, 'On an error in the config, data or workdir, show '
      'the whole traceback rather than one line.')
  if workdir is None:
    return Flags(None, None, traceback)
  workdir_flag = flags.DEFINE_string('workdir', None, workdir, required=True)
  fresh = flags.DEFINE_bool(
      'fresh', False, 'Delete the outputs an earlier run left in --workdir '
      'and start over (needed when the config changed).')
  flags.DEFINE_bool(
      'distributed', False, 'Multi-process run: call '
      'jax.distributed.initialize (on TPU pods and SLURM/Open MPI clusters '
      'it finds its peers itself).')
  flags.DEFINE_string(
      'coordinator_address', None, 'host:port of process 0, where the '
      'cluster is not detected (e.g. several GPU hosts by hand).')
  flags.DEFINE_integer('num_processes', None,
                       'Processes in all, with the above.')
  flags.DEFINE_integer('process_id', None,
                       "This process's index, with the above.")
  return Flags(workdir_flag, fresh, traceback)


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run for `main`, as the module docstring says."""
  app.run(_one_line_errors(main), flags_parser=_parse)


def _error(message: str) -> None:
  """Ends the program with `error: message`, on one line."""
  print('error: ' + ' '.join(str(message).split()), file=sys.stderr)
  sys.exit(USER_ERROR_STATUS)


def _parse(argv: list[str]) -> list[str]:
  """absl's flag parsing; a bad flag or config ends with one line."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    # Anything raised here comes from the command line: a flag, the config
    # file it names or a --config.* override.
    if '--traceback' in argv:
      raise
    if isinstance(e, (AttributeError, KeyError)):
      # ml_collections' word for a field the config lacks.
      _error(f'the config has no field {str(e).strip(chr(34) + chr(39))!r}; '
             'check the --config.* flags')
    _error(f'{_without_traceback(str(e))} (--helpfull lists the flags)')


def _without_traceback(message: str) -> str:
  """A message with an embedded traceback (as config_flags gives for an error
  in the config file) cut to its first line and the exception's line."""
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if not any(line.startswith('Traceback (most recent') for line in lines):
    return message
  return f'{lines[0]} {lines[-1]}'


def _one_line_errors(main: Callable[[list[str]], None]):
  def wrapped(argv: list[str]) -> None:
    _quiet_orbax()
    FLAGS = flags.FLAGS  # pylint: disable=invalid-name
    try:
      if 'distributed' in FLAGS and FLAGS.distributed:
        _initialize_distributed(FLAGS.coordinator_address,
                                FLAGS.num_processes, FLAGS.process_id)
      main(argv)
    except USER_ERRORS as e:
      if FLAGS.traceback:
        raise
      _error(str(e))
    except errors.Stopped as e:
      print(f'stopped: {e}', file=sys.stderr)
      sys.exit(STOPPED_STATUS)

  return wrapped


def _initialize_distributed(coordinator: Optional[str],
                            num_processes: Optional[int],
                            process_id: Optional[int]) -> None:
  if jax.config.jax_platforms in (None, '', 'cpu'):
    # Cross-process collectives on CPU go through gloo.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator, num_processes, process_id)
  except (ValueError, IndexError, RuntimeError) as e:
    # A cluster that is not detected, or flags that do not describe one.
    raise errors.UserError(
        f'--distributed could not start ({e}); outside a detected cluster '
        'give --coordinator_address, --num_processes and --process_id') from e


class _QuietOrbax(std_logging.Filter):

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or 'orbax' not in (
        record.pathname)


def _quiet_orbax() -> None:
  """Filters orbax INFO records out of absl's handler; warnings still show."""
  logging.get_absl_handler().addFilter(_QuietOrbax())
