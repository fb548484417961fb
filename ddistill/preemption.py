"""A clean stop on SIGTERM: the iteration in progress finishes, its
checkpoint is saved, and the run ends with `errors.Stopped`.

Schedulers (SLURM, Kubernetes, TPU VMs, `timeout`, the GPU campaign's
budget) send SIGTERM some seconds before they kill. Without this, a killed
run loses every iteration since its last periodic checkpoint.

In one process, `Watch` turns the signal into a flag that the training loop
reads between iterations. In a multi-process run, jax.distributed's
preemption sync manager owns SIGTERM and picks one step at which every
process saves; orbax's `reached_preemption` reports it.
"""

import signal
import threading

import jax
import orbax.checkpoint as ocp


class Watch:
  """`with Watch() as watch:` ... `watch.requested(mngr, step)` each step."""

  def __init__(self):
    self._signalled = False
    self._previous = None  # The handler to put back; None: none replaced.

  def __enter__(self) -> 'Watch':
    # Python may only set handlers from the main thread; a run started from
    # another thread just keeps the default (killed, resumed from the last
    # periodic checkpoint).
    if (jax.process_count() == 1 and
        threading.current_thread() is threading.main_thread()):
      previous = signal.signal(signal.SIGTERM, self._handle)
      # None: a handler installed outside Python, which cannot be put back.
      self._previous = signal.SIG_DFL if previous is None else previous
    return self

  def __exit__(self, *exc_info) -> None:
    self._restore()

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self._signalled = True
    self._restore()  # A second SIGTERM acts as it would have without us.

  def _restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def requested(self, mngr: ocp.CheckpointManager, step: int) -> bool:
    """Whether to save `step` now and stop. Every process of a run calls
    this at every step (orbax's preemption sync needs all of them)."""
    return mngr.reached_preemption(step) or self._signalled
