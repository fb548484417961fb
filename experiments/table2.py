r"""Table 2 of the paper: pretrained LeNets adapted among digit datasets.

  python -m experiments.table2 --config configs/table2.py --workdir /tmp/t2 \
      --config.pools_dir=/tmp/pools

Writes table2.md and table2.csv in --workdir; rerunning resumes.
"""

from ml_collections import config_flags

from ddistill.paper import table2
from ddistill.paper import tables
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/table2.py', 'Table config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  results = table2.run_table2(_CONFIG.value, _RUN.workdir.value,
                               fresh=_RUN.fresh.value)
  # From the results, not table2.md: only process 0 writes files.
  print(tables.table2(results)[0])


if __name__ == '__main__':
  flags.run(main)
