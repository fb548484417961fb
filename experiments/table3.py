r"""Table 3 of the paper: an ImageNet AlexNet adapted to VOC and CUB-200.

  python -m experiments.table3 --config configs/table3.py --workdir /tmp/t3 \
      --config.pools_dir=/tmp/pools

Writes table3.md and table3.csv in --workdir; rerunning resumes.
"""

from ml_collections import config_flags

from ddistill.paper import table3
from ddistill.paper import tables
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/table3.py', 'Table config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  results = table3.run_table3(_CONFIG.value, _RUN.workdir.value,
                               fresh=_RUN.fresh.value)
  # From the results, not table3.md: only process 0 writes files.
  print(tables.table3(results)[0])


if __name__ == '__main__':
  flags.run(main)
