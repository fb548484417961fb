"""Every `python -m experiments...` command in README.md and docs/*.md parses.

Commands are taken from fenced code blocks (backslash continuations joined,
`# comments` dropped, commands inside quoted strings found too) and from
inline code spans. Each is parsed as `app.run` would parse it, without
running anything: its module is imported, absl parses the command line
(`--config` loads the config file with its variant and applies the
`--config.*` overrides), and the result is checked by
`ddistill.config_checks.validate` as the kind of config the module runs. An
unknown flag, a bad config variant, an unknown config field or a value the
run would refuse fails the test.

The experiments define their flags on absl's global FLAGS when imported, so
two of them cannot share a process as they are. All commands run in one
subprocess (this file run as a script): each module is imported, its
commands parsed, and its flags deleted again before the next module.
"""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Mains that take positional arguments, and how many.
POSITIONALS = {'experiments.export': 1}
COMMAND = re.compile(r'python3?\s+-m\s+experiments\.')

# Commands that must fail, checked in the same subprocess (before the docs'
# own commands of the same module, so those also show the state is reset).
MUST_FAIL = [
    (('experiments.mnist', ['--config', 'configs/mnist.py', '--workdir', 'w',
                            '--no_such_flag=1']), 'no_such_flag'),
    (('experiments.mnist', ['--config', 'configs/mnist.py:fixed',
                            '--workdir', 'w']), "variant 'fixed'"),
    (('experiments.mnist', ['--config', 'configs/mnist.py', '--workdir', 'w',
                            '--config.distill.no_such_field=1']),
     'no_such_field'),
    (('experiments.mnist', ['--config', 'configs/mnist.py', '--workdir', 'w',
                            '--config.distill.image_init=noise']),
     'image_init'),
    (('experiments.mnist', ['--config', 'configs/mnist.py']), 'workdir'),
    (('experiments.table1', ['--config', 'configs/table1.py:cpu',
                             '--workdir', 'w',
                             '--config.mnist.fixed.distill.steps=0']),
     'distill.steps'),
]

# Commands that must parse whatever the docs say: distilling onto USPS in
# MNIST's format from a pretrained pool (every field it sets is declared).
MUST_PARSE = [
    ('experiments.mnist', ['--config', 'configs/mnist.py', '--workdir', 'w',
                           '--config.distill.init_mode=random_pretrained',
                           '--config.distill.pretrained_dir=POOL',
                           '--config.data.name=usps',
                           '--config.data.as_mnist=true']),
]


def doc_files() -> list[pathlib.Path]:
  return [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))


def _logical_lines(block: list[str]) -> list[str]:
  """A code block's lines, with backslash-newline continuations joined."""
  lines, current = [], ''
  for line in block:
    if line.rstrip().endswith('\\'):
      current += line.rstrip()[:-1] + ' '
    else:
      lines.append(current + line)
      current = ''
  if current:
    lines.append(current)
  return lines


def shell_fragments(text: str) -> list[str]:
  """Fenced code blocks' logical lines and inline code spans outside them."""
  fragments, prose, block = [], [], []
  fence = None
  for line in text.split('\n'):
    marker = re.match(r'\s*(`{3,}|~{3,})', line)
    if fence is None and marker:
      fence = marker.group(1)
      prose.append('')  # A code block ends the paragraph before it.
    elif fence is not None and marker and marker.group(1).startswith(fence):
      fragments += _logical_lines(block)
      fence, block = None, []
    elif fence is not None:
      block.append(line)
    else:
      prose.append(line)
  fragments += _logical_lines(block)  # An unclosed fence runs to the end.
  # Inline spans may wrap over lines, never over a blank line.
  for paragraph in re.split(r'\n[ \t]*\n', '\n'.join(prose)):
    for span in re.finditer(r'(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)', paragraph,
                            re.S):
      fragments.append(' '.join(span.group(2).split()))
  return fragments


def commands_in(fragment: str) -> list[tuple[str, list[str]]]:
  """(module, argv) of every `python -m experiments.X ...` in a shell line.

  A command ends at a shell operator (&&, ;, |, >...) or a comment; a `...`
  (arguments left out) is dropped; a quoted string holding a command (as
  `ssh host "cd dir && python -m ..."`) is searched too.
  """
  if not COMMAND.search(fragment):
    return []
  lexer = shlex.shlex(fragment, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  lexer.commenters = '#'
  tokens = list(lexer)
  found = []
  i = 0
  while i < len(tokens):
    token = tokens[i]
    if (re.fullmatch(r'(.*/)?python3?', token) and tokens[i + 1:i + 2] == ['-m']
        and tokens[i + 2:i + 3] and
        tokens[i + 2].startswith('experiments.')):
      module, args = tokens[i + 2], []
      i += 3
      while i < len(tokens) and not re.fullmatch(r'[();<>|&]+', tokens[i]):
        if tokens[i] != '...':
          args.append(tokens[i])
        i += 1
      found.append((module, args))
      continue
    if ' ' in token and COMMAND.search(token):
      found += commands_in(token)  # A command inside a quoted string.
    i += 1
  return found


def doc_commands() -> list[tuple[str, str, list[str]]]:
  """(file, module, argv) of every documented command."""
  found = []
  for path in doc_files():
    text = path.read_text()
    in_file = []
    for fragment in shell_fragments(text):
      in_file += commands_in(fragment)
    mentions = len(COMMAND.findall(text))
    if mentions != len(in_file):
      raise AssertionError(
          f'{path.name} mentions `python -m experiments.` {mentions} times '
          f'but {len(in_file)} commands were found in its code blocks and '
          'code spans: put every command in code, in full')
    found += [(path.name, module, args) for module, args in in_file]
  return found


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


def test_extraction():
  text = '\n'.join([
      'Run `python -m experiments.mnist --config configs/mnist.py',
      '--workdir a` first.',
      '',
      '```bash',
      'XLA_FLAGS=--x python -m experiments.mnist \\',
      '    --config configs/mnist.py:quick --workdir "b c"  # a comment',
      'ssh h --command "cd d && python -m experiments.table4 --runs r"',
      'python -m experiments.mnist --workdir=x ...   # on host0; more',
      'python -m experiments.pretrain --workdir p && python -m '
      'experiments.table4 --runs q | tee log',
      'pip install x',
      '```',
      'Not a command: `configs/mnist.py:quick`.',
  ])
  found = [c for f in shell_fragments(text) for c in commands_in(f)]
  assert found == [
      ('experiments.mnist', ['--config', 'configs/mnist.py:quick',
                             '--workdir', 'b c']),
      ('experiments.table4', ['--runs', 'r']),
      ('experiments.mnist', ['--workdir=x']),
      ('experiments.pretrain', ['--workdir', 'p']),
      ('experiments.table4', ['--runs', 'q']),
      ('experiments.mnist', ['--config', 'configs/mnist.py',
                             '--workdir', 'a']),
  ]


def test_readme_keeps_the_ci_commands():
  """The install and test lines of .ci/run, and the main job, are in README."""
  readme = (ROOT / 'README.md').read_text()
  ci = (ROOT / '.ci' / 'run').read_text().splitlines()
  lines = [l.strip() for l in ci if l.strip().startswith('python -m')]
  assert len(lines) == 2, lines
  for line in lines:
    assert line in readme, line
  assert 'DDISTILL_DATA_DIR' in readme
  assert ('python -m experiments.mnist --config configs/mnist.py --workdir'
          in readme)


def test_every_doc_command_parses():
  documented = doc_commands()
  assert len(documented) >= 10, documented
  controls = [command for command, _ in MUST_FAIL] + MUST_PARSE
  errors = run_parser(controls + [(m, a) for _, m, a in documented])
  for (command, expected), error in zip(MUST_FAIL, errors):
    assert error is not None, f'{command} parsed but must not'
    assert expected in error, (command, error)
  for command, error in zip(MUST_PARSE, errors[len(MUST_FAIL):]):
    assert error is None, (command, error)
  broken = [f'{where}: python -m {module} {shlex.join(args)}\n    {error}'
            for (where, module, args), error in
            zip(documented, errors[len(controls):]) if error is not None]
  assert not broken, '\n'.join(['commands that do not parse:'] + broken)


# ---------------------------------------------------------------------------
# The subprocess: python tests/test_doc_commands.py IN.json OUT.json


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
