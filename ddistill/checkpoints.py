"""Orbax checkpoints of the run state, for resuming after a crash.

Orbax writes each checkpoint to a temporary folder and renames it when
complete, so one half-written when the process died is never loaded (and
its temporary folder is removed when the next run opens the manager). A
complete checkpoint damaged later (a truncated or lost file) is moved aside
on resume and the one before it is used.
"""

import os
import sys
from typing import Any, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from ddistill.errors import CheckpointError


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Saves `state` as checkpoint `step`; a failed write stops the run.

  The checkpoints already there are left as they were: orbax deletes old
  ones only after a new one is complete.
  """
  try:
    mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
  except (OSError, ValueError) as e:  # tensorstore reports I/O as ValueError.
    raise CheckpointError(
        f'could not write the checkpoint of iteration {step} in '
        f'{mngr.directory} ({reason(e)}); {kept(mngr)}') from e


def kept(mngr: ocp.CheckpointManager) -> str:
  """What a run that stops on an error leaves to resume from, in words."""
  last = mngr.latest_step()
  if last is None:
    return 'no checkpoint was saved before it'
  return f'the last good checkpoint (iteration {last}) is intact'


def restore_latest(mngr: ocp.CheckpointManager,
                   like: Any) -> tuple[Optional[int], Any]:
  """(step, state) of the newest checkpoint that restores, or (None, like).

  Checkpoints are tried newest first. One that fails to restore twice in a
  row is moved aside to `<step>.corrupt` (kept, for a person to look at)
  with a one-line warning, so a damaged checkpoint costs only the iterations
  since the one before it. Raises CheckpointError if there were checkpoints
  and none restores.
  """
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  moved = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      state = _restore_retrying_once(mngr, step, abstract)
    except MemoryError:
      raise  # Not damage: the checkpoint stays where it is.
    except Exception as e:  # pylint: disable=broad-except
      # Any other failure, whatever layer of orbax or tensorstore reports
      # it: the checkpoint is moved aside, never deleted, so nothing is lost.
      moved.append(_move_aside(mngr, step, e))
      continue
    if moved:
      mngr.reload()  # Forget the moved ones, or orbax would delete them.
    return step, state
  if moved:
    mngr.reload()
    raise CheckpointError(
        f'no checkpoint in {mngr.directory} restores (moved aside: '
        f'{", ".join(moved)}); rerun to start over from iteration 0')
  return None, like


def _restore_retrying_once(mngr: ocp.CheckpointManager, step: int,
                           abstract: Any) -> Any:
  """Restores `step`, reading it again once if the first read fails.

  A shared filesystem can fail one read (a stale NFS handle) of a healthy
  checkpoint; only a second failure counts as damage.
  """
  for attempt in range(2):
    try:
      return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except MemoryError:
      raise
    except Exception:  # pylint: disable=broad-except
      quiet_reads_left_in_flight()
      if attempt:
        raise


def _move_aside(mngr: ocp.CheckpointManager, step: int,
                error: Exception) -> str:
  """Renames checkpoint `step` to `<step>.corrupt`; returns that name."""
  path = os.path.join(mngr.directory, str(step))
  aside = f'{path}.corrupt'
  if jax.process_index() == 0:  # One process moves it; all see it moved.
    n = 1
    while os.path.exists(aside):  # Damaged again after a rerun.
      n += 1
      aside = f'{path}.corrupt{n}'
    os.rename(path, aside)
    logging.warning('Checkpoint %s does not restore (%s); moved it aside to '
                    '%s.', path, reason(error), aside)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'ddistill: moved aside {step}')
  return os.path.basename(aside)


def quiet_reads_left_in_flight() -> None:
  """Drops the reports of reads that a failed restore left running.

  Orbax closes its event loop as soon as one read fails; tensorstore then
  reports every read still in flight as an unraisable 'Event loop is closed'
  error, a traceback each, after the warning that said what failed.
  """
  previous = sys.unraisablehook
  if getattr(previous, 'quiets_closed_loop', False):
    return

  def hook(unraisable):
    e = unraisable.exc_value
    if not (isinstance(e, RuntimeError) and
            str(e) == 'Event loop is closed'):
      previous(unraisable)

  hook.quiets_closed_loop = True
  sys.unraisablehook = hook


def reason(error: Exception, limit: int = 200) -> str:
  """One line: tensorstore's messages chain every layer, then a long spec."""
  text = ' '.join(str(error).split()).split(' [tensorstore_spec')[0]
  if len(text) > limit:  # The status code and the innermost cause.
    parts = text.split(': ')
    text = f'{parts[0]}: ... {parts[-1]}'
  return f'{type(error).__name__}: {text}' if text else type(error).__name__
