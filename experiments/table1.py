r"""Table 1 of the paper: distilled data against real-image baselines.

  python -m experiments.table1 --config configs/table1.py:quick --workdir /tmp/t1
  python -m experiments.table1 --config configs/table1.py:cpu --workdir /tmp/t1

Writes table1.md and table1.csv in --workdir; rerunning resumes.
"""

from ml_collections import config_flags

from ddistill.paper import table1
from ddistill.paper import tables
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/table1.py', 'Table config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  results = table1.run_table1(_CONFIG.value, _RUN.workdir.value,
                               fresh=_RUN.fresh.value)
  # From the results, not table1.md: only process 0 writes files.
  print(tables.table1(results)[0])


if __name__ == '__main__':
  flags.run(main)
