"""What `pip install .` installs: one top-level package, `ddistill`, with the
configs and entry points inside it, runnable from outside the repository.

setup.py's own build step lays the packages out as a wheel would; the
installed entry point then parses a config from that layout (a bad field,
so it stops before reading any data).
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_installed_layout_is_namespaced_and_runs(tmp_path):
  lib = tmp_path / 'lib'
  subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
                  str(lib)], cwd=ROOT, check=True, capture_output=True)
  assert sorted(os.listdir(lib)) == ['ddistill']
  for package in ('configs', 'experiments', 'paper', 'continual', 'models',
                  'data'):
    assert (lib / 'ddistill' / package / '__init__.py').exists(), package

  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = dict(os.environ, PYTHONPATH=str(lib), JAX_PLATFORMS='cpu')
  config = lib / 'ddistill' / 'configs' / 'mnist.py'
  proc = subprocess.run(
      [sys.executable, '-m', 'ddistill.experiments.mnist', '--config',
       f'{config}:quick', '--workdir', 'w', '--config.optim.b1=1.0'],
      cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
  # The config checks refused the field: the config file and its imports
  # loaded, and the entry point ran.
  assert proc.returncode != 0
  assert 'optim.b1 = 1.0' in proc.stdout + proc.stderr, proc.stderr[-2000:]

  # A notebook imports the installed configs directly.
  proc = subprocess.run(
      [sys.executable, '-c', 'from ddistill.configs import mnist; '
       "print(mnist.get_config('quick').num_iterations)"],
      cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().isdigit()
