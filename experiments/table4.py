r"""Table 4 of the paper from finished `experiments.continual` workdirs.

  python -m experiments.table4 --runs /tmp/cl --output /tmp/cl/table4.md

--runs holds one folder per variant (sgd, ewc, gem, gem40, gem50,
gem_distilled) as written by experiments.continual. Writes the table as
Markdown (--output) and CSV beside it.
"""

import os

from absl import flags as absl_flags

from ddistill import workdir
from ddistill.paper import tables
from experiments import flags

_RUNS = absl_flags.DEFINE_string('runs', None, 'Folder of variant workdirs.',
                                 required=True)
_OUTPUT = absl_flags.DEFINE_string('output', None, 'Where to write table4.md '
                                   '(default: <runs>/table4.md).')
flags.define(workdir=None)


def main(argv):
  del argv
  md, csv_text = tables.table4_from_runs(_RUNS.value)
  output = _OUTPUT.value or os.path.join(_RUNS.value, 'table4.md')
  workdir.write_table(os.path.splitext(output)[0], md, csv_text)
  print(md)


if __name__ == '__main__':
  flags.run(main)
