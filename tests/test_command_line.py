"""The experiments' mains at the command line: one shared flags helper, and a
problem the user can fix ends with one line and exit status 2."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAINS = sorted(p for p in (ROOT / 'experiments').glob('*.py')
               if p.name not in ('__init__.py', 'flags.py'))


def _run(module, *args):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def test_every_main_runs_through_the_flags_helper():
  assert len(MAINS) >= 10, MAINS
  for path in MAINS:
    tree = ast.parse(path.read_text())
    calls = {ast.unparse(node.func) for node in ast.walk(tree)
             if isinstance(node, ast.Call)}
    assert 'flags.run' in calls and 'flags.define' in calls, path.name
    assert 'app.run' not in calls, path.name


@pytest.mark.parametrize('args, message', [
    # A value config_checks refuses, found before anything is computed.
    (['--config.distill.steps=0'], 'error: config.distill.steps = 0 must be'),
    # A field the config lacks.
    (['--config.distill.no_such_field=1'],
     "error: the config has no field 'no_such_field'"),
    # Data that is not there.
    (['--config.data.source=local', '--config.data.data_dir=/no/such/dir'],
     'error: /no/such/dir/mnist: folder not found'),
])
def test_a_bad_config_or_data_prints_one_line_and_exits_with_status_2(
    tmp_path, args, message):
  workdir = tmp_path / 'never'
  run = _run('experiments.mnist', '--config', 'configs/mnist.py:quick',
             '--workdir', str(workdir), *args)
  assert run.returncode == 2, run.stderr[-2000:]
  errors = [line for line in run.stderr.splitlines()
            if not line.startswith(('I', 'W'))]  # absl's log lines.
  assert len(errors) == 1 and errors[0].startswith(message), run.stderr
  assert 'Traceback' not in run.stderr
  if 'data_dir' not in args[-1]:  # Config errors come before the workdir.
    assert not workdir.exists()


EVALUATE = ('experiments.evaluate', '--config', 'configs/mnist.py:quick',
            '--distilled', '{tmp}/d.npz')


@pytest.mark.parametrize('args, message', [
    ((*EVALUATE, '--output', '{tmp}/d.npz'),
     'error: --output {tmp}/d.npz is the distilled set itself'),
    ((*EVALUATE, '--arch', 'lenet', '--epochs', '5'),
     'error: --arch, --epochs: for --protocol standard only'),
    ((*EVALUATE, '--num_models', '0'), 'error: flag --num_models=0'),
    (('experiments.mnist', '--config', 'configs/mnist.py:quick', '--workdir',
      '{tmp}/w', '--distributed'), 'error: --distributed could not start'),
    (('experiments.export', '{tmp}/d.npz', '--out', ''),
     'error: --out is empty'),
])
def test_contradictory_or_out_of_range_flags_print_one_line(tmp_path, args,
                                                            message):
  module, *args = [a.format(tmp=tmp_path) for a in args]
  run = _run(module, *args)
  assert run.returncode == 2, run.stderr[-2000:]
  errors = [line for line in run.stderr.splitlines()
            if not line.startswith(('I', 'W'))]  # absl's log lines.
  assert len(errors) == 1, run.stderr
  assert errors[0].startswith(message.format(tmp=tmp_path)), run.stderr


def test_a_diverged_run_prints_one_line_and_keeps_its_checkpoint(tmp_path,
                                                                  mnist):
  del mnist  # Needs $DDISTILL_DATA_DIR: the run trains until it diverges.
  workdir = tmp_path / 'diverged'
  run = _run('experiments.mnist', '--config', 'configs/mnist.py:quick',
             '--workdir', str(workdir), '--config.optim.lr=1e12',
             '--config.num_iterations=4', '--config.checkpoint_every=1',
             '--config.log_every=1', '--config.eval_every=0',
             '--config.eval.num_models=1', '--config.eval.num_models_during=1')
  assert run.returncode == 2, run.stderr[-2000:]
  errors = [line for line in run.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and 'non-finite' in errors[0], run.stderr[-2000:]
  assert 'Traceback' not in run.stderr
  # The checkpoints before it are kept, and the message names the last.
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()
                 if p.name.isdigit())
  assert steps and f'checkpoint (iteration {steps[-1]})' in errors[0], (
      steps, errors)


def test_traceback_flag_shows_the_traceback(tmp_path):
  run = _run('experiments.mnist', '--config', 'configs/mnist.py:quick',
             '--workdir', str(tmp_path / 'never'),
             '--config.distill.steps=0', '--traceback')
  assert run.returncode != 0
  assert 'Traceback' in run.stderr and 'ConfigError' in run.stderr


@pytest.mark.parametrize('table', ['table1', 'table2', 'table3'])
def test_table_mains_print_from_the_results_not_the_file(table, tmp_path):
  """Only process 0 writes tableN.md: every process prints from results."""
  script = (f'from ddistill.paper import {table} as runner\n'
            f'runner.run_{table} = lambda *args, **kwargs: {{}}\n'
            f'from experiments import flags, {table} as main_module\n'
            'flags.run(main_module.main)\n')
  result = subprocess.run(
      [sys.executable, '-c', script, f'--workdir={tmp_path}'], cwd=ROOT,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert not os.listdir(tmp_path)  # Nothing written, nothing read.
  assert '| source |' in result.stdout


@pytest.mark.parametrize('args, message', [
    (['--unroll', '0'], 'error: flag --unroll=0: 0 is not a positive integer'),
    (['--conv_impl', 'foo'], "error: config.model.conv_impl = 'foo' is not"),
])
def test_the_step_benchmark_refuses_bad_flags_in_one_line(args, message):
  run = subprocess.run([sys.executable, 'benchmarks/outer_step.py', *args],
                       cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 2, run.stderr[-2000:]
  errors = [line for line in run.stderr.splitlines()
            if not line.startswith(('I', 'W'))]  # absl's log lines.
  assert len(errors) == 1 and errors[0].startswith(message), run.stderr
