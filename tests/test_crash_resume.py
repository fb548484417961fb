"""A run killed with SIGKILL, or stopped with SIGTERM, resumes to the same
result as one never killed."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ddistill import checkpoints
from ddistill import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Iterations of this config take about 15 ms on CPU: 200 leave a signal
# sent a few iterations in some seconds to land before the run's end.
ITERATIONS = 200


def _command(workdir, *extra):
  return [sys.executable, '-m', 'experiments.mnist',
          '--config', 'configs/mnist.py:quick', '--workdir', workdir,
          f'--config.num_iterations={ITERATIONS}',
          '--config.checkpoint_every=10', '--config.log_every=10',
          '--config.distill.steps=2', '--config.distill.epochs=1',
          '--config.real_batch_size=64', '--config.eval.num_models=1', *extra]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, mnist):
  """The workdir of the run never killed."""
  del mnist  # Only needs $DDISTILL_DATA_DIR to be set.
  full = str(tmp_path_factory.mktemp('full'))
  run = subprocess.run(_command(full), cwd=REPO, env=dict(os.environ),
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  return full


def _signal_mid_run(command, sig, ready, log):
  """Starts `command`, sends it `sig` once `ready()` (polled); returns the
  process once it ended, and its stderr (kept in the file `log`: a pipe
  left unread while polling could fill and stall the run)."""
  with open(log, 'w') as err:
    proc = subprocess.Popen(command, cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=err)
    _signal_when(proc, sig, ready)
  with open(log) as f:
    return proc, f.read()


def _signal_when(proc, sig, ready):
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if ready():
      break
    time.sleep(0.05)
  assert proc.poll() is None, 'the run ended before it could be signalled'
  proc.send_signal(sig)
  proc.wait(timeout=120)


def _checkpoint_from_20(workdir):
  """Whether the workdir has a checkpoint of iteration 20 or later."""
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if (
      os.path.isdir(ckpt_dir)) else []
  return bool(steps) and max(steps) >= 20


def _logged_from(workdir, step):
  """Whether metrics.jsonl has a line of iteration `step` or later."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return False
  with open(path) as f:
    steps = [json.loads(line)['step'] for line in f if line.endswith('\n')]
  return bool(steps) and max(steps) >= step


def _rerun_matches(command, workdir, full, latest):
  rerun = subprocess.run(command, cwd=REPO, env=dict(os.environ),
                         capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f'Resuming from the checkpoint at iteration {latest}' in rerun.stderr
  a = export.load_distilled(os.path.join(full, 'distilled.npz'))
  b = export.load_distilled(os.path.join(workdir, 'distilled.npz'))
  np.testing.assert_array_equal(a.images, b.images)  # Bitwise on CPU.
  np.testing.assert_array_equal(a.lrs, b.lrs)


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path,
                                                          uninterrupted):
  killed = str(tmp_path / 'killed')
  proc, _ = _signal_mid_run(_command(killed), signal.SIGKILL,
                            lambda: _checkpoint_from_20(killed),
                            tmp_path / 'killed.log')
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, 'distilled.npz'))
  latest = checkpoints.manager(killed, 2).latest_step()
  assert latest is not None and 20 <= latest < ITERATIONS
  _rerun_matches(_command(killed), killed, uninterrupted, latest)


def test_sigterm_saves_the_iteration_in_progress_then_rerun_matches(
    tmp_path, uninterrupted):
  stopped = str(tmp_path / 'stopped')
  # No periodic checkpoint: the one found after SIGTERM is the stop's. A
  # line every iteration, to signal early.
  command = _command(stopped, '--config.checkpoint_every=1000',
                     '--config.log_every=1')
  proc, stderr = _signal_mid_run(command, signal.SIGTERM,
                                 lambda: _logged_from(stopped, 2),
                                 tmp_path / 'stopped.log')
  assert proc.returncode == 143, stderr[-2000:]
  assert not os.path.exists(os.path.join(stopped, 'distilled.npz'))
  latest = checkpoints.manager(stopped, 2).latest_step()
  assert latest is not None and 2 <= latest < ITERATIONS, latest
  last_line = stderr.strip().splitlines()[-1]
  assert last_line.startswith(
      f'stopped: stopped on request (SIGTERM) after iteration {latest} of '
      f'{ITERATIONS}'), last_line
  _rerun_matches(command, stopped, uninterrupted, latest)


def test_half_written_checkpoint_is_never_loaded(tmp_path):
  """A temporary (uncommitted) checkpoint folder is ignored on restore."""
  import jax.numpy as jnp
  mngr = checkpoints.manager(str(tmp_path), 2)
  state = {'x': jnp.arange(3.0), 'step': jnp.asarray(5)}
  checkpoints.save(mngr, 5, state)
  # What orbax leaves when a process dies mid-save: a tmp-suffixed folder.
  os.makedirs(tmp_path / 'checkpoints' / '10.orbax-checkpoint-tmp-123' / 'x')
  fresh = checkpoints.manager(str(tmp_path), 2)
  step, restored = checkpoints.restore_latest(fresh, state)
  assert step == 5
  np.testing.assert_array_equal(restored['x'], state['x'])
