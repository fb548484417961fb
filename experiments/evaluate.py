r"""Evaluates a saved distilled set on fresh held-out models.

  python -m experiments.evaluate --config configs/mnist.py:official_random \
      --distilled /tmp/mnist_random/distilled.npz --num_models 200

The config names the dataset, model and init distribution (and, for a fixed
init, the seed that made it).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from ddistill import atomic_files
from ddistill import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist.py', 'Config the set was distilled with.',
    lock_config=True)
_DISTILLED = flags.DEFINE_string('distilled', None, 'Path of distilled.npz.',
                                 required=True)
_NUM_MODELS = flags.DEFINE_integer(
    'num_models', None, 'Held-out models for a random init_mode; default: '
    'config.eval.num_models.')
_OUTPUT = flags.DEFINE_string('output', None,
                              'Optional path for the results as JSON.')


def main(argv):
  del argv
  config = _CONFIG.value
  num_models = _NUM_MODELS.value or config.eval.num_models
  results = train.evaluate_distilled_file(config, _DISTILLED.value,
                                          num_models)
  acc = results['test_accuracy']
  print(f"test_accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
        f"over {acc['n_models']} models")
  if _OUTPUT.value:
    atomic_files.write_json(_OUTPUT.value, results)


if __name__ == '__main__':
  app.run(main)
