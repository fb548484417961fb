"""The run plumbing every experiment shares: one place for each piece.

- `guard`: makes a workdir this config's, refusing one that holds another
  config's outputs (`fresh` wipes them first) or another kind of run's
  (SAVED_CONFIGS; even with `fresh`); `without`: a config (JSON) less the
  fields its comparison ignores;
- `read_json`, `write_json`, `cached_json`: resumable JSON, written whole
  (atomic_files) and by process 0 only;
- `table`, `write_table`: a table as Markdown and CSV;
- `names`, `numbers`: the lists configs hold as comma-separated strings;
- `pool_dir`: the folder of a pretrained pool, or how to make it.

Every process of a multi-host run calls these in the same order; they
synchronize the processes where one writes what the others then read.
"""

import csv
import io
import json
import os
import shutil
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

import jax
from jax.experimental import multihost_utils
import ml_collections

from ddistill import atomic_files
from ddistill.errors import ConfigError
from ddistill.errors import DataError
from ddistill.errors import WorkdirConflict

# The file each kind of run saves its config in: train-style runs (mnist,
# figure3, the tables, linear, pretrain) config.json, continual ones
# setup.json. Finding the other kind's, a run's workdir is another
# experiment's. (Outputs that may sit beside a run, such as a standard
# evaluation's table, save theirs under other names.)
SAVED_CONFIGS = ('config.json', 'setup.json')


def _is_main() -> bool:
  return jax.process_index() == 0  # Only process 0 writes.


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'ddistill: {name}')


def _remove(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def guard(workdir: str, config: ml_collections.ConfigDict, fresh: bool, *,
          saved_as: str = 'config.json', outputs: Sequence[str] = (),
          compare: Callable[[dict], Any] = lambda c: c,
          extends: Optional[Callable[[dict], bool]] = None,
          owned: Sequence[str] = ()) -> None:
  """Makes `workdir` this config's; refuses one that holds another config's.

  The config is saved as `saved_as` on first use. A later config must match
  it in `compare(config as JSON)`, or else `extends(saved)` must say it
  takes the saved run over (the saved config is then replaced; `extends`
  may itself raise WorkdirConflict). fresh: first delete `outputs` and the
  saved config. owned: outputs never left without a saved config; finding
  one alone, the workdir is refused (its config is unknown). A run's
  workdir (`saved_as` one of SAVED_CONFIGS) holding another kind of run's
  saved config is refused, fresh or not.
  """
  if '://' in workdir:  # os.path would make gs://b/r a local ./gs:/b/r.
    raise ConfigError(
        f'--workdir {workdir} is a URL; ddistill writes with local file '
        'calls, so give a local path or one on a shared filesystem (NFS)')
  # Checked before --fresh, which must not wipe another kind of run.
  for other in SAVED_CONFIGS:
    if (saved_as in SAVED_CONFIGS and other != saved_as and
        os.path.exists(os.path.join(workdir, other))):
      raise WorkdirConflict(f'{workdir} holds another experiment\'s run '
                            f'({other}); use another --workdir')
  if fresh and _is_main():
    for name in (*outputs, saved_as):
      _remove(os.path.join(workdir, name))
  _sync('workdir wiped')
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, saved_as)
  current = json.loads(config.to_json())
  saved = read_json(path)
  if saved is None:
    alone = [name for name in owned
             if os.path.exists(os.path.join(workdir, name))]
    if alone:
      raise WorkdirConflict(
          f'{workdir} holds {alone[0]} of an unknown config (no {path}); use '
          'another --workdir, or pass --fresh to start over in this one')
  elif compare(saved) != compare(current) and not (extends and
                                                   extends(saved)):
    raise WorkdirConflict(
        f'{workdir} holds outputs of a different config ({path}); use '
        'another --workdir, or pass --fresh to start over in this one')
  if saved != current:
    write_json(path, current)
  _sync('workdir checked')


def without(config: dict, fields: Mapping[str, Collection[str]]) -> dict:
  """A copy of a config (JSON) less `fields`: {dotted group: its fields},
  e.g. {'learner.distill': ('real_chunk',)}; groups it lacks are skipped."""
  config = dict(config)
  for group, names in fields.items():
    head, _, rest = group.partition('.')
    sub = config.get(head)
    if isinstance(sub, dict):
      config[head] = (without(sub, {rest: names}) if rest else
                      {k: v for k, v in sub.items() if k not in names})
  return config


def read_json(path: str, default: Any = None) -> Any:
  """The JSON value in `path`, or `default` if there is no such file."""
  if not os.path.exists(path):
    return default
  with open(path) as f:
    try:
      return json.load(f)
    except ValueError as e:  # ddistill writes whole files; not one of them.
      raise DataError(f'{path} is not valid JSON ({e}); restore it, or '
                      'start over (--fresh)') from None


def write_json(path: str, value: Any, indent: Optional[int] = 2) -> None:
  """Writes `value` whole or not at all, from process 0 only."""
  if _is_main():
    atomic_files.write_json(path, value, indent=indent)


def cached_json(path: str, compute: Callable[[], Any],
                key: Optional[str] = None) -> Any:
  """What `compute()` returns, computed once and kept in `path`.

  A rerun reads the saved value instead of computing it again. key: `path`
  holds a JSON object of several such values, one per key, each saved as
  soon as it is computed (a killed run keeps the ones it finished).
  """
  saved = read_json(path, {} if key else None)
  if key is None and saved is not None:
    value = saved
  elif key is not None and key in saved:
    value = saved[key]
  else:
    value = compute()
    write_json(path, value if key is None else {**saved, key: value},
               indent=2 if key is None else None)
  _sync(f'{path} cached')
  return value


def table(header: Sequence[str], rows: Sequence[Sequence[Any]],
          note: str = '') -> tuple[str, str]:
  """Markdown (with `note` under the table) and CSV of the same table."""
  lines = ['| ' + ' | '.join(map(str, header)) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(map(str, row)) + ' |' for row in rows]
  if note:
    lines += ['', note]
  buf = io.StringIO()
  csv.writer(buf, lineterminator='\n').writerows([header, *rows])
  return '\n'.join(lines) + '\n', buf.getvalue()


def write_table(stem: str, md: str, csv_text: Optional[str] = None) -> None:
  """`<stem>.md` and `<stem>.csv`, each whole or not at all (process 0)."""
  if not _is_main():
    return
  atomic_files.write_text(f'{stem}.md', md)
  if csv_text is not None:
    atomic_files.write_text(f'{stem}.csv', csv_text)


def names(value: str) -> list[str]:
  """'a, b,c' -> ['a', 'b', 'c']: the lists configs hold as strings."""
  return [name.strip() for name in str(value).split(',') if name.strip()]


def numbers(value: str, field: str, cast: type = float) -> list:
  """'0.1,1' -> [0.1, 1.0]; a ConfigError names config.<field> if not."""
  try:
    values = [cast(v) for v in names(value)]
  except ValueError:
    raise ConfigError(f'config.{field} = {value!r} is not comma-separated '
                      f'{cast.__name__} values') from None
  if not values:
    raise ConfigError(f'config.{field} is empty')
  return values


def pool_dir(pools_dir: str, name: str, pretrain_args: str) -> str:
  """`<pools_dir>/<name>`, which must hold a pool (experiments.pretrain).

  pretrain_args: the experiments.pretrain flags that make this pool, for
  the error message.
  """
  path = os.path.join(pools_dir, name)
  if not pools_dir or not os.path.isdir(os.path.join(path, 'params')):
    raise FileNotFoundError(
        f'no pretrained pool for {name} at {path!r}: run `python -m '
        f'experiments.pretrain {pretrain_args} --workdir '
        f'{path or "POOLS/" + name}` and set config.pools_dir')
  return path
