"""Every `python -m experiments...` command in README.md and docs/*.md parses.

Commands are taken from fenced code blocks (backslash continuations joined,
`# comments` dropped, commands inside quoted strings found too) and from
inline code spans. Each is parsed as `app.run` would parse it, without
running anything (command_parser.py): an unknown flag, a bad config variant,
an unknown config field or a value the run would refuse fails the test.
"""

import pathlib
import re
import shlex

from command_parser import run_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
