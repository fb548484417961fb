"""The same run on 1 device and on 2 processes of 4 fake CPU devices agrees;
SIGTERM to one process stops both at the same saved iteration.

Six inits per iteration over the 8 devices: two padding inits, and the
collectives cross processes. The SIGTERM test runs one device per process:
the preemption sync is between processes (and its runs start faster).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

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


def test_two_processes_of_four_devices_match_one_device(tmp_path, mnist):
  del mnist  # Only needs $DDISTILL_DATA_DIR.
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  _run(_command(one), _env())
  reference = _load(one)

  port = _free_port()
  procs = [subprocess.Popen(
      _command(two, '--distributed', f'--coordinator_address=127.0.0.1:{port}',
               '--num_processes=2', f'--process_id={i}'),
      cwd=REPO, env=_env(4, cache=False), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  devices = next(line for line in outs[0][1].splitlines()
                 if 'JAX devices:' in line)
  assert devices.count('CpuDevice(') == 8, devices  # 2 processes x 4.
  multi = _load(two)
  np.testing.assert_allclose(multi.images, reference.images, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(multi.lrs, reference.lrs, rtol=1e-5)


def test_sigterm_to_one_process_stops_both_at_one_saved_step(tmp_path, mnist):
  """jax's preemption sync: the signalled process tells the other, and both
  save the same iteration and end."""
  del mnist  # Only needs $DDISTILL_DATA_DIR.
  two = str(tmp_path / 'two')
  port, logs = _free_port(), [tmp_path / f'p{i}.log' for i in range(2)]
  procs = []
  for i in range(2):
    with open(logs[i], 'w') as err:  # A file: a pipe unread could fill.
      procs.append(subprocess.Popen(
          _command(two, '--distributed',
                   f'--coordinator_address=127.0.0.1:{port}',
                   '--num_processes=2', f'--process_id={i}',
                   '--config.num_iterations=40',
                   '--config.checkpoint_every=1000'),
          cwd=REPO, env=_env(1, cache=False), stdout=subprocess.DEVNULL,
          stderr=err))
  metrics = os.path.join(two, 'metrics.jsonl')
  deadline = time.time() + 400
  while time.time() < deadline and not _logged(metrics, 3):
    assert all(p.poll() is None for p in procs), 'a process ended early'
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGTERM)
  for p in procs:
    p.wait(timeout=300)
  errs = [log.read_text() for log in logs]
  assert [p.returncode for p in procs] == [143, 143], [e[-2000:] for e in errs]
  steps = os.listdir(os.path.join(two, 'checkpoints'))
  assert len(steps) == 1 and 3 <= int(steps[0]) < 40, steps
  for err in errs:  # C++ logs may come after it: searched, not the last line.
    assert ('stopped: stopped on request (SIGTERM) after iteration '
            f'{steps[0]} of 40') in err, err[-2000:]


def _logged(metrics, step):
  """Whether the metrics.jsonl at `metrics` has a line of `step` or later."""
  if not os.path.exists(metrics):
    return False
  with open(metrics) as f:
    return any(json.loads(line)['step'] >= step for line in f
               if line.endswith('\n'))
