"""A clean stop on SIGTERM during a run's outer iterations: the iteration in
progress finishes, its checkpoint is saved, and the run ends with
`errors.Stopped`. Elsewhere (loading, the final evaluation) SIGTERM acts as
it would without this.

Schedulers (SLURM, Kubernetes, TPU VMs, `timeout`, the GPU campaign's
budget) send SIGTERM some seconds before they kill. Without this, a killed
run loses every iteration since its last periodic checkpoint.

In one process, `Watch` turns the signal into a flag that the training loop
reads between iterations; a second SIGTERM kills as before. In a
multi-process run, jax.distributed's preemption sync manager owns SIGTERM
(every one, for the whole run) and picks one step at which every process
saves; orbax's `reached_preemption` reports it.
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
    # Taken before it is put back: a signal between the two finds None.
    previous, self._previous = self._previous, None
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)

  def requested(self, mngr: ocp.CheckpointManager, count: int) -> bool:
    """Whether to stop (and save) now, after `count` iterations of this
    process (1 after its first). Every process calls this at every count.

    Counted from this process's start, not the run's step: jax's preemption
    sync takes a notice that came before its first call as count 0 and stops
    at 1, which a run resumed at step 40 would never reach. The processes of
    a run all resume from the same checkpoint, so their counts agree.
    """
    return mngr.reached_preemption(count) or self._signalled
