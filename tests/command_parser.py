"""Parses command lines as their mains would, without running anything.

`run_parser([(module, argv), ...])` returns, per command, None or its error
in one line. Each module is imported, absl parses the command line
(`--config` loads the config file with its variant and applies the
`--config.*` overrides), and the result is checked by
`ddistill.config_checks.validate` as the kind of config the module runs. An
unknown flag, a bad config variant, an unknown config field or a value the
run would refuse is an error. Modules are `experiments.X` or a script's
dotted path (`benchmarks.outer_step`).

The mains define their flags on absl's global FLAGS when imported, so two of
them cannot share a process as they are. All commands run in one subprocess
(this file run as a script): each module is imported, its commands parsed,
and its flags deleted again before the next module. Used by
test_doc_commands.py (the docs' commands) and test_campaign.py (the GPU
scripts' stages).
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Mains that take positional arguments, and how many.
POSITIONALS = {'experiments.export': 1}


def run_parser(commands: list[tuple[str, list[str]]]) -> list:
  """Parses the commands in one subprocess; per command None or the error."""
  with tempfile.TemporaryDirectory() as tmp:
    inputs, outputs = os.path.join(tmp, 'in.json'), os.path.join(tmp, 'out.json')
    with open(inputs, 'w') as f:
      json.dump(commands, f)
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    proc = subprocess.run(
        [sys.executable, __file__, inputs, outputs], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(outputs) as f:
      return json.load(f)


# The kind of config each experiment runs (config_checks.KINDS); any other
# module with a --config flag runs a distillation config.
KINDS = {'experiments.table1': 'table1', 'experiments.table2': 'table2',
         'experiments.table3': 'table3', 'experiments.figure3': 'figure3',
         'experiments.pretrain': 'pretrain', 'experiments.linear': 'linear',
         'experiments.continual': 'continual'}


def _validate(module: str, config) -> None:
  """Checks `config` as `module`'s runner does, before any compute."""
  # pylint: disable=g-import-not-at-top
  from ddistill import config_checks
  from ddistill.continual import runner
  from ddistill.paper import baselines
  from ddistill.paper import table2
  # pylint: enable=g-import-not-at-top
  names = {'table1': {'knn_metrics': baselines.KNN_METRICS},
           'table2': {'rows': table2.ROWS},
           'continual': {'methods': runner.METHODS,
                         'streams': runner.STREAMS}}
  kind = KINDS.get(module, 'distill')
  config_checks.validate(config.copy_and_resolve_references(), kind,
                         **names.get(kind, {}))


def _one_line(e: Exception) -> str:
  """An error's first and last lines (config errors carry a traceback)."""
  lines = [l.strip() for l in f'{type(e).__name__}: {e}'.splitlines()
           if l.strip()]
  return lines[0] if len(lines) == 1 else f'{lines[0]} ... {lines[-1]}'


def _parse_all(commands: list) -> list:
  import importlib  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  errors = [None] * len(commands)
  by_module = {}
  for i, (module, _) in enumerate(commands):
    by_module.setdefault(module, []).append(i)
  for module, indices in by_module.items():
    before = set(flag_values)
    sys.argv = [module]  # Read by the config flag when it is defined.
    try:
      importlib.import_module(module)
    except Exception as e:  # pylint: disable=broad-except
      for i in indices:
        errors[i] = f'import {module}: {_one_line(e)}'
      continue
    own = set(flag_values) - before
    for i in indices:
      # The config flag reads its --config.* overrides from sys.argv.
      sys.argv = [module] + list(commands[i][1])
      try:
        flag_values.unparse_flags()
        rest = flag_values(sys.argv)
        if len(rest) > 1 + POSITIONALS.get(module, 0):
          raise ValueError(f'arguments that are not flags: {rest[1:]}')
        if 'config' in own:
          _validate(module, flag_values['config'].value)
      except Exception as e:  # pylint: disable=broad-except
        errors[i] = _one_line(e)
      finally:
        for name in set(flag_values) - before - own:  # --config.* overrides.
          delattr(flag_values, name)
    flag_values.unparse_flags()
    for name in own:
      delattr(flag_values, name)
    sys.modules.pop(module, None)
  return errors


if __name__ == '__main__':
  sys.path.insert(0, str(ROOT))
  _inputs, _outputs = sys.argv[1:3]  # _parse_all rewrites sys.argv.
  with open(_inputs) as f:
    _commands = json.load(f)
  _errors = _parse_all(_commands)
  with open(_outputs, 'w') as f:
    json.dump(_errors, f)
