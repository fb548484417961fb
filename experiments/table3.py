r"""Table 3 of the paper: an ImageNet AlexNet adapted to VOC and CUB-200.

  python -m experiments.table3 --config configs/table3.py --workdir /tmp/t3 \
      --config.pools_dir=/tmp/pools

Writes table3.md and table3.csv in --workdir; rerunning resumes.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from ddistill.paper import table3
from experiments import quiet_logs

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/table3.py', 'Table config file (path[:variant]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for outputs.',
                               required=True)


def main(argv):
  del argv
  quiet_logs.install()
  table3.run_table3(_CONFIG.value, _WORKDIR.value)
  with open(f'{_WORKDIR.value}/table3.md') as f:
    print(f.read())


if __name__ == '__main__':
  app.run(main)
