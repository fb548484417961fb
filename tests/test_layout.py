"""The house rule: the core never imports the paper's experiments or
continual learning; they import the core. Checked on the source, so a lazy
import inside a function counts too."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'ddistill'
WINGS = ('ddistill.paper', 'ddistill.continual')
OUTSIDE = ('experiments', 'configs', 'benchmarks', 'tests')


def _imports(path: pathlib.Path) -> set[str]:
  """Every module `path` imports, as dotted names."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


def _module(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _core_modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    if not _module(path).startswith(WINGS):
      yield path


def test_the_core_never_imports_the_wings_or_the_scripts():
  bad = []
  for path in _core_modules():
    for name in _imports(path):
      if name.startswith(WINGS) or name.split('.')[0] in OUTSIDE:
        bad.append(f'{_module(path)} imports {name}')
  assert not bad, '\n'.join(bad)


def test_the_wings_do_not_import_each_other():
  bad = []
  for path in sorted(PACKAGE.rglob('*.py')):
    module = _module(path)
    for wing, other in (WINGS, WINGS[::-1]):
      if module.startswith(wing):
        bad += [f'{module} imports {n}' for n in _imports(path)
                if n.startswith(other)]
  assert not bad, '\n'.join(bad)


def test_the_check_sees_a_lazy_import(tmp_path):
  path = tmp_path / 'lazy.py'
  path.write_text('def f():\n  from ddistill.paper import table1\n')
  assert 'ddistill.paper.table1' in _imports(path)


def test_no_function_in_the_library_or_the_mains_is_over_60_lines():
  long = []
  for path in [*PACKAGE.rglob('*.py'), *(PACKAGE.parent / 'experiments').glob(
      '*.py')]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > 60:
          long.append(f'{path.name}:{node.name} ({lines} lines)')
  assert not long, long
