r"""Section 3.3: learned one-step distilled data for linear regression.

  python -m experiments.linear --config configs/linear.py --workdir /tmp/lin

Writes linear.json and linear.md / linear.csv: for each M, the excess loss
over the global minimum after one step from held-out inits, and
||I - (η/M) dᵀd||_F.
"""

from ml_collections import config_flags

from ddistill.paper import linear
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/linear.py', 'Config file.', lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  print(linear.run_linear(_CONFIG.value, _RUN.workdir.value,
                          fresh=_RUN.fresh.value), end='')


if __name__ == '__main__':
  flags.run(main)
