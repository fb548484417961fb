"""The shared run plumbing: workdir guard, resumable JSON, tables, lists."""

import json
import os

import ml_collections
import pytest

from ddistill import errors
from ddistill import workdir


def _config(**fields):
  return ml_collections.ConfigDict({'a': 1, 'seeds': '0', **fields})


def test_guard_saves_the_config_and_refuses_another_unless_fresh(tmp_path):
  folder = str(tmp_path / 'w')
  workdir.guard(folder, _config(), False, outputs=('out.json',))
  with open(os.path.join(folder, 'config.json')) as f:
    assert json.load(f) == {'a': 1, 'seeds': '0'}
  workdir.write_json(os.path.join(folder, 'out.json'), [1])
  workdir.guard(folder, _config(), False, outputs=('out.json',))  # Same.
  with pytest.raises(errors.WorkdirConflict, match='--fresh'):
    workdir.guard(folder, _config(a=2), False, outputs=('out.json',))
  assert os.path.exists(os.path.join(folder, 'out.json'))  # Nothing lost.
  workdir.guard(folder, _config(a=2), True, outputs=('out.json',))
  assert not os.path.exists(os.path.join(folder, 'out.json'))
  with open(os.path.join(folder, 'config.json')) as f:
    assert json.load(f)['a'] == 2


def test_guard_compares_what_compare_keeps_and_lets_extends_take_over(
    tmp_path):
  folder = str(tmp_path)
  no_seeds = lambda c: {k: v for k, v in c.items() if k != 'seeds'}
  workdir.guard(folder, _config(), False, compare=no_seeds)
  workdir.guard(folder, _config(seeds='0,1'), False, compare=no_seeds)
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['seeds'] == '0,1'  # The latest is saved.
  seen = []
  def extends(saved):
    seen.append(saved['a'])
    return True
  workdir.guard(folder, _config(a=5), False, extends=extends)
  assert seen == [1]
  with pytest.raises(errors.WorkdirConflict,
                     match='holds outputs of a different config'):
    workdir.guard(folder, _config(a=6), False, extends=lambda saved: False)


def test_without_drops_fields_of_nested_groups_and_leaves_the_input_whole():
  config = {'a': 1, 'learner': {'lr': 0.1, 'distill': {'real_chunk': 0,
                                                       'gd_steps': 5}}}
  kept = workdir.without(config, {'learner.distill': ('real_chunk',),
                                  'a': ('x',), 'model': ('conv_impl',)})
  assert kept == {'a': 1, 'learner': {'lr': 0.1, 'distill': {'gd_steps': 5}}}
  assert config['learner']['distill'] == {'real_chunk': 0, 'gd_steps': 5}


def test_guard_refuses_owned_outputs_without_a_saved_config(tmp_path):
  (tmp_path / 'runs.json').write_text('{}')
  with pytest.raises(errors.WorkdirConflict, match='unknown config'):
    workdir.guard(str(tmp_path), _config(), False, owned=('runs.json',))
  workdir.guard(str(tmp_path), _config(), True, outputs=('runs.json',),
                owned=('runs.json',))
  assert not (tmp_path / 'runs.json').exists()


def test_guard_refuses_another_kind_of_run_even_with_fresh(tmp_path):
  # A continual run (setup.json) and a distillation run (config.json) both
  # write results.json: neither may take the other's workdir.
  workdir.guard(str(tmp_path), _config(), False, outputs=('results.json',))
  workdir.write_json(str(tmp_path / 'results.json'), {'kept': True})
  for fresh in (False, True):
    with pytest.raises(errors.WorkdirConflict,
                       match="another experiment's run \\(config.json\\)"):
      workdir.guard(str(tmp_path), _config(), fresh, saved_as='setup.json',
                    outputs=('results.json',))
  assert workdir.read_json(str(tmp_path / 'results.json')) == {'kept': True}
  assert not (tmp_path / 'setup.json').exists()


def test_a_damaged_json_file_is_named_not_parsed_into_a_traceback(tmp_path):
  (tmp_path / 'config.json').write_text('{"a": 1, "seeds"')
  with pytest.raises(errors.DataError, match='config.json is not valid JSON'):
    workdir.guard(str(tmp_path), _config(), False)
  assert (tmp_path / 'config.json').read_text() == '{"a": 1, "seeds"'


def test_cached_json_computes_once_per_value_and_key(tmp_path):
  calls = []
  def compute(value):
    calls.append(value)
    return value
  path = str(tmp_path / 'one.json')
  assert workdir.cached_json(path, lambda: compute({'x': 1})) == {'x': 1}
  assert workdir.cached_json(path, lambda: compute({'x': 2})) == {'x': 1}
  keyed = str(tmp_path / 'many.json')
  assert workdir.cached_json(keyed, lambda: compute(3), key='a') == 3
  assert workdir.cached_json(keyed, lambda: compute(4), key='b') == 4
  assert workdir.cached_json(keyed, lambda: compute(5), key='a') == 3
  assert calls == [{'x': 1}, 3, 4]
  assert workdir.read_json(keyed) == {'a': 3, 'b': 4}
  assert workdir.read_json(str(tmp_path / 'none.json'), 'default') == 'default'


def test_table_as_markdown_and_csv(tmp_path):
  md, csv_text = workdir.table(['name', 'value, %'], [['a', 1.5], ['b', 2]],
                               note='A note.')
  assert md == ('| name | value, % |\n|---|---|\n| a | 1.5 |\n| b | 2 |\n\n'
                'A note.\n')
  assert csv_text == 'name,"value, %"\na,1.5\nb,2\n'
  workdir.write_table(str(tmp_path / 't'), md, csv_text)
  assert (tmp_path / 't.md').read_text() == md
  assert (tmp_path / 't.csv').read_text() == csv_text


def test_name_and_number_lists():
  assert workdir.names(' mnist, cifar10 ,,') == ['mnist', 'cifar10']
  assert workdir.names('') == []
  assert workdir.numbers('0, 0.5,1', 'margins') == [0.0, 0.5, 1.0]
  assert workdir.numbers('1,3', 'steps', int) == [1, 3]
  with pytest.raises(errors.ConfigError, match='config.steps'):
    workdir.numbers('1,x', 'steps', int)
  with pytest.raises(errors.ConfigError, match='config.seeds is empty'):
    workdir.numbers(' ', 'seeds')


def test_pool_dir_says_how_to_make_a_missing_pool(tmp_path):
  with pytest.raises(FileNotFoundError,
                     match='experiments.pretrain --config X'):
    workdir.pool_dir(str(tmp_path), 'usps', '--config X')
  os.makedirs(tmp_path / 'usps' / 'params')
  assert workdir.pool_dir(str(tmp_path), 'usps', '') == str(tmp_path / 'usps')


def test_guard_refuses_a_url_workdir_and_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(errors.ConfigError, match='gs://bucket/run is a URL'):
    workdir.guard('gs://bucket/run', _config(), True)
  assert not os.listdir(tmp_path)  # No local ./gs:/bucket/run made.
