r"""Table 1 of the paper: distilled data against real-image baselines.

  python -m experiments.table1 --config configs/table1.py:quick --workdir /tmp/t1
  python -m experiments.table1 --config configs/table1.py:cpu --workdir /tmp/t1

Writes table1.md and table1.csv in --workdir; rerunning resumes.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from ddistill.paper import table1
from experiments import quiet_logs
from experiments import user_errors

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/table1.py', 'Table config file (path[:variant]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for outputs.',
                               required=True)


def main(argv):
  del argv
  quiet_logs.install()
  table1.run_table1(_CONFIG.value, _WORKDIR.value)
  with open(f'{_WORKDIR.value}/table1.md') as f:
    print(f.read())


if __name__ == '__main__':
  app.run(user_errors.one_line(main))
