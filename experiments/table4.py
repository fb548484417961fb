r"""Table 4 of the paper from finished `experiments.continual` workdirs.

  python -m experiments.table4 --runs /tmp/cl --output /tmp/cl/table4.md

--runs holds one folder per variant (sgd, ewc, gem, gem40, gem50,
gem_distilled) as written by experiments.continual.
"""

from absl import app
from absl import flags

from ddistill import atomic_files
from ddistill.paper import tables

_RUNS = flags.DEFINE_string('runs', None, 'Folder of variant workdirs.',
                            required=True)
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write table4.md '
                              '(default: <runs>/table4.md).')


def main(argv):
  del argv
  md = tables.table4_from_runs(_RUNS.value)
  atomic_files.write_text(_OUTPUT.value or f'{_RUNS.value}/table4.md', md)
  print(md)


if __name__ == '__main__':
  app.run(main)
