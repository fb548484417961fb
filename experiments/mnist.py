r"""Distills MNIST (or any dataset the config names).

  python -m experiments.mnist --config configs/mnist.py --workdir /tmp/mnist
  python -m experiments.mnist --config configs/mnist.py:official_random \
      --workdir /tmp/mnist_random --config.eval.num_models=100

Rerunning the same command resumes from the workdir's latest checkpoint that
restores (a damaged one is moved aside to checkpoints/<step>.corrupt); rerun
with a larger --config.num_iterations, it extends a finished run.
"""

from absl import logging
import jax
from ml_collections import config_flags

from ddistill import train
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist.py', 'Experiment config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define()


def main(argv):
  del argv
  logging.info('JAX devices: %s', jax.devices())
  results = train.train_and_evaluate(_CONFIG.value, _RUN.workdir.value,
                                     fresh=_RUN.fresh.value)
  acc = results['test_accuracy']
  print(f"test_accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
        f"over {acc['n_models']} models; outputs in {_RUN.workdir.value}")


if __name__ == '__main__':
  flags.run(main)
