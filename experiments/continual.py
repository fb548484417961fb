r"""Continual learning on permuted MNIST (Table 4 of the paper).

  python -m experiments.continual --config configs/continual.py:gem \
      --workdir /tmp/cl/gem

Writes results.json (final average accuracy, mean ± std over seeds, for the
best hyperparameter; the accuracy matrices) and runs.json; rerunning resumes.
"""

from ml_collections import config_flags

from ddistill.continual import runner
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/continual.py', 'Config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  results = runner.run_continual(_CONFIG.value, _RUN.workdir.value,
                                 fresh=_RUN.fresh.value)
  acc = results['final_accuracy']
  print(f"final average accuracy {100 * acc['mean']:.2f} +- "
        f"{100 * acc['std']:.2f} over {acc['n_seeds']} seeds, best setting "
        f"{results['best_setting']}")


if __name__ == '__main__':
  flags.run(main)
