"""The same run on 1 device, 8 fake CPU devices, and 2 processes agrees.

Six inits per iteration: 8 devices need two padding inits, 2 processes none.
"""

import os
import socket
import subprocess
import sys

import numpy as np

from ddistill import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir, *extra):
  return [sys.executable, '-m', 'experiments.mnist',
          '--config', 'configs/mnist.py:official_random', '--workdir', workdir,
          '--config.num_iterations=2', '--config.distill.num_inits=6',
          '--config.distill.steps=2', '--config.distill.epochs=1',
          '--config.real_batch_size=64', '--config.eval_every=0',
          '--config.log_every=1', '--config.eval.num_models=2',
          '--config.eval.num_models_during=2', *extra]


def _env(devices=None, cache=True):
  # The two-process run goes without the shared compilation cache: with it,
  # gloo's start-up handshake sometimes timed out (one test run in four).
  drop = {'XLA_FLAGS'} | (set() if cache else {'JAX_COMPILATION_CACHE_DIR'})
  env = {k: v for k, v in os.environ.items() if k not in drop}
  if devices:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def _run(command, env):
  run = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  return run


def _load(workdir):
  return export.load_distilled(os.path.join(workdir, 'distilled.npz'))


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_eight_fake_devices_and_two_processes_match_one_device(tmp_path,
                                                               mnist):
  del mnist  # Only needs $DDISTILL_DATA_DIR.
  one, eight, two = (str(tmp_path / n) for n in ('one', 'eight', 'two'))
  _run(_command(one), _env())
  _run(_command(eight), _env(8))
  reference = _load(one)
  sharded = _load(eight)
  np.testing.assert_allclose(sharded.images, reference.images, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(sharded.lrs, reference.lrs, rtol=1e-5)

  port = _free_port()
  procs = [subprocess.Popen(
      _command(two, '--distributed', f'--coordinator_address=127.0.0.1:{port}',
               '--num_processes=2', f'--process_id={i}'),
      cwd=REPO, env=_env(cache=False), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  multi = _load(two)
  np.testing.assert_allclose(multi.images, reference.images, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(multi.lrs, reference.lrs, rtol=1e-5)
