r"""Distills MNIST (or any dataset the config names).

  python -m experiments.mnist --config configs/mnist.py --workdir /tmp/mnist
  python -m experiments.mnist --config configs/mnist.py:random \
      --workdir /tmp/mnist_random --config.eval.num_models=100

Rerunning the same command resumes from the workdir's latest checkpoint.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ddistill import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist.py', 'Experiment config file (path[:variant]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for outputs.',
                               required=True)
_FRESH = flags.DEFINE_bool(
    'fresh', False, 'Delete the checkpoints and metrics already in --workdir '
    'and start over.')


def main(argv):
  del argv
  logging.info('JAX devices: %s', jax.devices())
  results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                     fresh=_FRESH.value)
  acc = results['test_accuracy']
  print(f"test_accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
        f"over {acc['n_models']} models; outputs in {_WORKDIR.value}")


if __name__ == '__main__':
  app.run(main)
