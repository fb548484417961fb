r"""Figure 3 of the paper: test accuracy against the number of GD steps.

  python -m experiments.figure3 --config configs/figure3.py --workdir /tmp/f3

Writes figure3.png, figure3.md, figure3.csv and figure3.json; rerunning
resumes.
"""

from ml_collections import config_flags

from ddistill.paper import figure3
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/figure3.py', 'Figure config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  for p in figure3.run_figure3(_CONFIG.value, _RUN.workdir.value,
                               fresh=_RUN.fresh.value):
    print(f"{p['init_mode']:>6} init, {p['gd_steps']:>4} GD steps: "
          f"{100 * p['mean']:.2f} +- {100 * p['std']:.2f} "
          f"(n={p['n_models']})")


if __name__ == '__main__':
  flags.run(main)
