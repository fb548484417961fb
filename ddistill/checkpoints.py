"""Orbax checkpoints of the run state, for resuming after a crash.

Orbax writes each checkpoint to a temporary folder and renames it when
complete, so one half-written when the process died is never loaded.
"""

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
  mngr.save(step, args=ocp.args.StandardSave(state), force=True)
  mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager,
                   like: Any) -> tuple[Optional[int], Any]:
  """(step, state) of the latest complete checkpoint, or (None, like)."""
  step = mngr.latest_step()
  if step is None:
    return None, like
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  return step, mngr.restore(step, args=ocp.args.StandardRestore(abstract))
