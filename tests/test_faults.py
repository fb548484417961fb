"""Faults a run survives with nothing lost: kills, damaged checkpoints, disk
errors, and a run extended with more iterations.

Faults are injected at deterministic points: in-process, where a `Killed`
exception stands in for SIGKILL (nothing in a run catches it), and once as a
real SIGKILL of a subprocess while it writes a checkpoint. The runs are tiny
and see a slice of MNIST, to keep CI fast. tests/test_crash_resume.py kills a
run at a random moment; the soak benchmark (benchmarks/faults.py) at many.
"""

import contextlib
import dataclasses
import errno
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from configs import continual as continual_config
from configs import mnist as mnist_config
from configs import table1 as table1_config
from ddistill import atomic_files
from ddistill import errors
from ddistill import checkpoints
from ddistill.continual import runner
from ddistill.data import datasets
from ddistill import export
from ddistill import metrics
from ddistill.paper import table1
from ddistill import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A run of 4 iterations with checkpoints at 2 and 4, as small as runs get.
TINY = {'num_iterations': 4, 'checkpoint_every': 2, 'log_every': 2,
        'distill.steps': 1, 'distill.epochs': 1, 'real_batch_size': 64,
        'eval.num_models': 1, 'eval.num_models_during': 1}


# Runs here see the first images of MNIST only: faults do not depend on the
# data's size, the tests' time does.
TRAIN, TEST = 3000, 1000


def _small(data):
  return dataclasses.replace(
      data, train_images=data.train_images[:TRAIN],
      train_labels=data.train_labels[:TRAIN], test_images=data.test_images[
          :TEST], test_labels=data.test_labels[:TEST])


@pytest.fixture(scope='module', autouse=True)
def small_mnist(mnist):
  """Every run here loads the small slice of MNIST."""
  small = _small(mnist)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train, 'load_data', lambda config, whiten=True: small)
    yield small


class Killed(BaseException):
  """Stands in for SIGKILL: nothing in the run catches it."""


def _set(config, overrides):
  config.update_from_flattened_dict(overrides)
  return config


def _tiny_config(**overrides):
  """The config `--config configs/mnist.py:quick` with TINY gives."""
  return _set(mnist_config.get_config('quick'), {**TINY, **overrides})


def _distilled(workdir):
  return export.load_distilled(os.path.join(workdir, 'distilled.npz'))


def _assert_same_set(a, b):
  np.testing.assert_array_equal(a.images, b.images)  # Bitwise on CPU.
  np.testing.assert_array_equal(a.lrs, b.lrs)


@pytest.fixture(scope='module')
def reference(tmp_path_factory, worker_id):
  """The tiny run, uninterrupted: what every faulted run must end with.

  Tests only read it. Under pytest-xdist the workers share one, made by the
  first that needs it: compiling it is most of its time.
  """
  if worker_id == 'master':  # No xdist.
    workdir = tmp_path_factory.mktemp('reference')
  else:  # The session's folder, above each worker's own.
    workdir = tmp_path_factory.getbasetemp().parent / 'faults_reference'
  with open(f'{workdir}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # The others wait for the first.
    if not (workdir / 'results.json').exists():
      train.train_and_evaluate(_tiny_config(), str(workdir))
  return str(workdir)


def _data_file(workdir, step):
  """A data file of checkpoint `step` (tensorstore's, under default/d/)."""
  files = glob.glob(os.path.join(workdir, 'checkpoints', str(step),
                                 'default', 'd', '*'))
  assert files, f'no data file in checkpoint {step}'
  return files[0]


# Reads a failed restore left in flight report to orbax's closed event loop;
# checkpoints.restore_latest quiets them, but pytest swaps in its own hook.
@pytest.mark.filterwarnings(
    'ignore:Exception ignored:pytest.PytestUnraisableExceptionWarning')
def test_damaged_checkpoints_are_moved_aside_and_the_last_good_one_used(
    reference, tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)  # A finished run.
  config = _tiny_config()
  truncated = _data_file(workdir, 4)
  size = os.path.getsize(truncated)
  with open(truncated, 'r+b') as f:
    f.truncate(size // 2)
  os.remove(os.path.join(workdir, 'results.json'))

  caplog.set_level('INFO')
  train.train_and_evaluate(config, workdir)
  warnings = [r.getMessage() for r in caplog.records
              if r.levelname == 'WARNING' and 'does not restore' in
              r.getMessage()]
  assert len(warnings) == 1 and '\n' not in warnings[0]
  assert 'checkpoints/4 ' in warnings[0] and '4.corrupt' in warnings[0]
  # It costs checkpoint_every iterations: the run went on from 2.
  assert 'Resuming from the checkpoint at iteration 2.' in caplog.text
  aside = os.path.join(workdir, 'checkpoints', '4.corrupt')
  assert os.path.getsize(os.path.join(
      aside, os.path.relpath(truncated, os.path.join(
          workdir, 'checkpoints', '4')))) == size // 2  # Kept as it was.
  _assert_same_set(_distilled(workdir), _distilled(reference))
  assert [m['step'] for m in metrics.read(workdir)] == [0, 2, 4]

  # A file missing from the newest and the one before damaged too: no
  # checkpoint restores, and the run stops with one line saying so.
  os.remove(_data_file(workdir, 4))
  with open(_data_file(workdir, 2), 'r+b') as f:
    f.truncate(1)
  with pytest.raises(errors.CheckpointError) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)
  assert '\n' not in message
  assert f'no checkpoint in {workdir}/checkpoints restores' in message
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '2.corrupt', '4.corrupt', '4.corrupt2']


def test_a_read_that_fails_once_is_retried_and_the_checkpoint_kept(
    tmp_path, monkeypatch):
  state = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
  mngr = checkpoints.manager(str(tmp_path), keep=2)
  checkpoints.save(mngr, 3, state)
  real_restore, calls = mngr.restore, []

  def flaky(*args, **kwargs):  # One stale NFS read, then healthy ones.
    calls.append(args)
    if len(calls) == 1:
      raise OSError(errno.ESTALE, 'Stale file handle')
    return real_restore(*args, **kwargs)

  monkeypatch.setattr(mngr, 'restore', flaky)
  step, restored = checkpoints.restore_latest(
      mngr, {'w': np.zeros((2, 3), np.float32)})
  assert step == 3 and len(calls) == 2
  np.testing.assert_array_equal(restored['w'], state['w'])
  assert os.listdir(tmp_path / 'checkpoints') == ['3']  # Not moved aside.


def test_failing_disk_write_stops_the_run_and_keeps_the_last_checkpoint(
    reference, tmp_path, monkeypatch, caplog):
  from orbax.checkpoint._src.path import async_path  # Where orbax commits.
  workdir = str(tmp_path)
  config = _tiny_config()
  rename = async_path.rename

  async def full_disk_at_4(src, dst, *args, **kwargs):
    if '/checkpoints/4.' in str(src):
      raise OSError(errno.ENOSPC, 'No space left on device', str(dst))
    return await rename(src, dst, *args, **kwargs)

  monkeypatch.setattr(async_path, 'rename', full_disk_at_4)
  with pytest.raises(errors.CheckpointError) as e:
    train.train_and_evaluate(config, workdir)
  assert '\n' not in str(e.value)
  assert ('could not write the checkpoint of iteration 4' in str(e.value) and
          'No space left on device' in str(e.value) and
          'the last good checkpoint (iteration 2) is intact' in str(e.value))
  assert not os.path.exists(os.path.join(workdir, 'distilled.npz'))
  monkeypatch.undo()
  assert checkpoints.manager(workdir, 2).all_steps() == [2]

  # An output file that cannot be written: one line naming it; the file
  # already there is left whole, and no temporary file stays behind.
  results = os.path.join(workdir, 'results.json')
  atomic_files.write_text(results, 'old')
  replace = os.replace

  def full_disk_for_results(src, dst):
    if dst == results:
      raise OSError(errno.ENOSPC, 'No space left on device')
    replace(src, dst)

  monkeypatch.setattr(os, 'replace', full_disk_for_results)
  caplog.set_level('INFO')
  with pytest.raises(OSError, match=f'could not write {results}: No space'):
    train.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  # Checkpoint 2 was intact: this run went on from it.
  assert 'Resuming from the checkpoint at iteration 2.' in caplog.text
  with open(results) as f:
    assert f.read() == 'old'
  assert not glob.glob(os.path.join(workdir, '*.tmp*'))
  # Rerun once the disk has room: the same set as a run never faulted.
  train.train_and_evaluate(config, workdir)
  _assert_same_set(_distilled(workdir), _distilled(reference))


def test_more_iterations_extend_a_finished_run_and_fewer_are_refused(
    reference, tmp_path, caplog):
  workdir = str(tmp_path)
  first = train.run_or_load(_tiny_config(num_iterations=2), workdir)
  assert first['iterations'] == 2
  caplog.set_level('INFO')
  extended = train.run_or_load(_tiny_config(), workdir)
  assert 'Resuming from the checkpoint at iteration 2.' in caplog.text
  assert extended['iterations'] == 4
  _assert_same_set(_distilled(workdir), _distilled(reference))
  assert train.run_or_load(_tiny_config(), workdir) == extended  # Reused.
  with pytest.raises(errors.WorkdirConflict,
                     match='holds a run of 4 iterations; num_iterations = 3 '
                     'can only extend it'):
    train.run_or_load(_tiny_config(num_iterations=3), workdir)
  with pytest.raises(errors.WorkdirConflict, match='different config'):
    train.run_or_load(_tiny_config(**{'optim.lr': 0.02}), workdir)


# experiments.mnist on the small data, SIGKILLing itself once orbax has
# written checkpoint 4 in full to its temporary folder, before renaming it:
# what a kill while the checkpoint is being written leaves on disk.
_KILLED_WRITING_CHECKPOINT_4 = rf'''
import dataclasses, os, signal
from absl import app
from orbax.checkpoint._src.path import async_path
from ddistill import train
from experiments import mnist

load = train.load_data
def small(config, whiten=True):
  d = load(config, whiten)
  return dataclasses.replace(
      d, train_images=d.train_images[:{TRAIN}],
      train_labels=d.train_labels[:{TRAIN}], test_images=d.test_images[
          :{TEST}], test_labels=d.test_labels[:{TEST}])
train.load_data = small

rename = async_path.rename
async def rename_or_die(src, dst, *args, **kwargs):
  if os.path.basename(str(dst)) == '4':
    os.kill(os.getpid(), signal.SIGKILL)
  return await rename(src, dst, *args, **kwargs)
async_path.rename = rename_or_die
app.run(mnist.main)
'''


def test_killed_while_writing_a_checkpoint_then_an_output(reference,
                                                           tmp_path, caplog):
  workdir = str(tmp_path)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  killed = subprocess.run(
      [sys.executable, '-c', _KILLED_WRITING_CHECKPOINT_4, '--config',
       'configs/mnist.py:quick', '--workdir', workdir] +
      [f'--config.{k}={v}' for k, v in TINY.items()],
      cwd=REPO, env={**os.environ, 'DDISTILL_DATA_DIR':
                     datasets.resolve_data_dir()},
      capture_output=True, text=True, timeout=600)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  left = sorted(os.listdir(ckpt_dir))
  assert left[0] == '2' and left[1].startswith('4.orbax-checkpoint-tmp')

  # The same run resumed here, from checkpoint 2, and killed as distilled.npz
  # is renamed into place.
  caplog.set_level('INFO')
  replace = os.replace

  def replace_or_die(src, dst):
    if dst.endswith('distilled.npz'):
      raise Killed(dst)
    replace(src, dst)

  with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
    patch.setattr(os, 'replace', replace_or_die)
    train.train_and_evaluate(_tiny_config(), workdir)
  assert 'Resuming from the checkpoint at iteration 2.' in caplog.text
  assert sorted(os.listdir(ckpt_dir)) == ['2', '4']  # The stray one gone.
  assert not os.path.exists(os.path.join(workdir, 'distilled.npz'))

  caplog.clear()
  train.train_and_evaluate(_tiny_config(), workdir)
  assert 'Resuming from the checkpoint at iteration 4.' in caplog.text
  _assert_same_set(_distilled(workdir), _distilled(reference))
  assert [m['step'] for m in metrics.read(workdir)] == [0, 2, 4]


@contextlib.contextmanager
def _killed_on_write(name, nth):
  """Expects Killed, raised in place of the `nth` write of a file `name`."""
  write_json, calls = atomic_files.write_json, []

  def write_or_die(path, *args, **kwargs):
    if os.path.basename(path) == name:
      calls.append(path)
      if len(calls) == nth:
        raise Killed(path)
    write_json(path, *args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(atomic_files, 'write_json', write_or_die)
    with pytest.raises(Killed):
      yield


def _tiny_table1():
  """Table 1 :quick, as small as it still runs every column."""
  config = table1_config.get_config('quick')
  # Both distillation cells are the reference run: killing and resuming
  # distillation is tested above; here, the table's own bookkeeping.
  config.mnist.fixed = config.mnist.random = _tiny_config()
  config.mnist.step_counts = '1'
  b = config.baselines
  b.per_class, b.num_models, b.num_sets = 1, 1, 1
  b.num_candidates, b.num_selected = 2, 1
  b.selection_models, b.selection_images, b.lrs = 1, 64, '0.1'
  b.knn_ks, b.knn_metrics = '1', 'l2'
  return config


def test_table1_killed_and_rerun_ends_with_the_uninterrupted_table(
    reference, tmp_path):
  config = _tiny_table1()
  workdir = str(tmp_path / 'killed')
  for table in (workdir, str(tmp_path / 'whole')):
    for cell in ('ours_fixed', 'ours_random'):  # Finished runs, read back.
      shutil.copytree(reference, os.path.join(table, 'mnist', cell))
  table1.run_table1(config, str(tmp_path / 'whole'))
  # Killed as the second baseline column is saved (the file's third write,
  # after the distilled lrs): the rerun keeps the first column and redoes
  # the rest.
  with _killed_on_write('baselines.json', 3):
    table1.run_table1(config, workdir)
  with open(os.path.join(workdir, 'mnist', 'baselines.json')) as f:
    assert list(json.load(f)) == ['distilled_lrs', 'knn_random_real']
  table1.run_table1(config, workdir)
  for name in ('table1.md', 'table1.csv'):
    with open(tmp_path / 'whole' / name) as a, open(
        os.path.join(workdir, name)) as b:
      assert a.read() == b.read()


def test_continual_run_killed_and_rerun_ends_with_the_uninterrupted_results(
    small_mnist, tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, 'load_dataset',
                      lambda *args, **kwargs: small_mnist)
  config = continual_config.get_config('gem')  # Two margins, one seed.
  config.seeds, config.gem_margins = '0', '0,0.5'
  config.num_tasks, config.train_per_task = 2, 50
  whole = runner.run_continual(config, str(tmp_path / 'whole'),
                                      log=lambda _: None)
  workdir = str(tmp_path / 'killed')
  with _killed_on_write('runs.json', 2):  # The second margin's run.
    runner.run_continual(config, workdir, log=lambda _: None)
  with open(os.path.join(workdir, 'runs.json')) as f:
    assert len(json.load(f)) == 1
  again = runner.run_continual(config, workdir, log=lambda _: None)
  assert {k: v for k, v in again.items() if k != 'config'} == {
      k: v for k, v in whole.items() if k != 'config'}
