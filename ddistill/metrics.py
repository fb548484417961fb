"""Metrics as JSON lines in the workdir, one object per logged iteration."""

import json
import os
from typing import Any

from ddistill import atomic_files


def _plain(value: Any) -> Any:
  # jax/numpy scalars and arrays -> Python numbers and lists.
  if hasattr(value, 'tolist'):
    return value.tolist()
  return value


class JsonlWriter:
  """Appends `{"step": ..., **scalars}` lines to `<workdir>/metrics.jsonl`."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self.enabled = enabled

  def write(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    line = json.dumps({'step': step, **{k: _plain(v) for k, v in
                                        values.items()}})
    with open(self.path, 'a') as f:
      f.write(line + '\n')


def keep_before(workdir: str, step: int) -> None:
  """Drops the lines of iterations `step` and later, for a resumed run.

  A resumed run logs the iterations after its checkpoint again; without
  this their lines would appear twice. A line cut short by a kill
  mid-append is dropped too.
  """
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        if json.loads(line)['step'] < step:
          kept.append(line.rstrip('\n') + '\n')
      except json.JSONDecodeError:
        continue
  atomic_files.write_text(path, ''.join(kept))


def read(workdir: str) -> list[dict]:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
