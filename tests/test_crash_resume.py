"""A run killed with SIGKILL resumes to the same result as one never killed."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from ddistill import checkpoints
from ddistill import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir):
  return [sys.executable, '-m', 'experiments.mnist',
          '--config', 'configs/mnist.py:quick', '--workdir', workdir,
          '--config.num_iterations=20', '--config.checkpoint_every=4',
          '--config.log_every=4', '--config.distill.steps=2',
          '--config.distill.epochs=1', '--config.real_batch_size=64',
          '--config.eval.num_models=1']


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path, mnist):
  del mnist  # Only needs $DDISTILL_DATA_DIR to be set.
  env = dict(os.environ)
  full, killed = str(tmp_path / 'full'), str(tmp_path / 'killed')
  run = subprocess.run(_command(full), cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]

  proc = subprocess.Popen(_command(killed), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  ckpt_dir = os.path.join(killed, 'checkpoints')
  deadline = time.time() + 300
  # Kill once a checkpoint past the first exists, i.e. mid-run.
  while time.time() < deadline and proc.poll() is None:
    steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if (
        os.path.isdir(ckpt_dir)) else []
    if steps and max(steps) >= 8:
      break
    time.sleep(0.05)
  assert proc.poll() is None, 'the run ended before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(killed, 'distilled.npz'))
  latest = checkpoints.manager(killed, 2).latest_step()
  assert latest is not None and 8 <= latest < 20

  rerun = subprocess.run(_command(killed), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f'Resuming from the checkpoint at iteration {latest}' in rerun.stderr
  a = export.load_distilled(os.path.join(full, 'distilled.npz'))
  b = export.load_distilled(os.path.join(killed, 'distilled.npz'))
  np.testing.assert_array_equal(a.images, b.images)  # Bitwise on CPU.
  np.testing.assert_array_equal(a.lrs, b.lrs)


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
