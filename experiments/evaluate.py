r"""Evaluates a saved distilled set on fresh held-out models.

  python -m experiments.evaluate --config configs/mnist.py:official_random \
      --distilled /tmp/mnist_random/distilled.npz --num_models 200

The config names the dataset, model and init distribution (and, for a fixed
init, the seed that made it).

--protocol standard evaluates the set as later work does (ddistill/
standard_eval.py): fresh networks of each --arch train on all its images
with SGD, ignoring the learned lrs, and a cross-architecture table goes to
--workdir (standard_eval.md, .csv, .json):

  python -m experiments.evaluate --protocol standard \
      --arch convnet,lenet,alexcifarnet,resnet18_gn \
      --config configs/mnist.py:official_random \
      --distilled /tmp/mnist_random/distilled.npz --num_models 10 \
      --workdir /tmp/mnist_random/standard

A --workdir holding the table of other inputs is refused; --fresh replaces
that table.
"""

import dataclasses
import os

from absl import flags as absl_flags
import ml_collections
from ml_collections import config_flags

from ddistill import augment
from ddistill import standard_eval
from ddistill import train
from ddistill import workdir
from ddistill.errors import ConfigError
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist.py', 'Config the set was distilled with.',
    lock_config=True)
_DISTILLED = absl_flags.DEFINE_string('distilled', None,
                                      'Path of distilled.npz.', required=True)
_NUM_MODELS = absl_flags.DEFINE_integer(
    'num_models', None, 'Held-out models for a random init_mode; default: '
    'config.eval.num_models.', lower_bound=1)
_OUTPUT = absl_flags.DEFINE_string(
    'output', None, 'Optional path for the results as JSON (with --protocol '
    'standard, the table\'s rows only; --workdir gets standard_eval.json, '
    'which adds the recipe).')
_PROTOCOL = absl_flags.DEFINE_enum(
    'protocol', 'paper', ['paper', 'standard'], 'paper: train on the steps '
    'in order with the learned lrs; standard: train on all images with SGD '
    '(the flags below).')
_WORKDIR = absl_flags.DEFINE_string(
    'workdir', None, 'standard: folder for the cross-architecture table.')
_FRESH = absl_flags.DEFINE_bool(
    'fresh', False, 'standard: replace the table of another evaluation in '
    '--workdir.')
_ARCH = absl_flags.DEFINE_list(
    'arch', 'convnet,lenet,alexcifarnet,resnet18_gn', 'standard: the '
    'architectures to train (comma-separated registered models).')
_RECIPE = standard_eval.Recipe()
_EPOCHS = absl_flags.DEFINE_integer('epochs', _RECIPE.epochs,
                                    'standard: training epochs.')
_BATCH_SIZE = absl_flags.DEFINE_integer('batch_size', _RECIPE.batch_size,
                                        'standard: minibatch size.')
_LR = absl_flags.DEFINE_float('lr', _RECIPE.lr, 'standard: SGD step size.')
_LR_DECAY = absl_flags.DEFINE_float(
    'lr_decay', _RECIPE.lr_decay, 'standard: the lr is multiplied by this '
    'halfway through.')
_MOMENTUM = absl_flags.DEFINE_float('momentum', _RECIPE.momentum,
                                    'standard: SGD momentum.')
_WEIGHT_DECAY = absl_flags.DEFINE_float('weight_decay', _RECIPE.weight_decay,
                                        'standard: weight decay.')
_DSA = absl_flags.DEFINE_string(
    'dsa', '', 'standard: DSA transforms applied to each minibatch, per '
    f'image (comma-separated, of {", ".join(augment.TRANSFORMS)}); "" = none.')
_DSA_STRENGTH = absl_flags.DEFINE_float('dsa_strength', 1.0,
                                        'standard: DSA strength.')
flags.define(workdir=None)
STANDARD_ONLY = (_WORKDIR, _FRESH, _ARCH, _EPOCHS, _BATCH_SIZE, _LR, _LR_DECAY,
                 _MOMENTUM, _WEIGHT_DECAY, _DSA, _DSA_STRENGTH)


def _standard(config, num_models: int) -> list[dict]:
  if not _WORKDIR.value:
    raise ConfigError('--protocol standard needs --workdir (where its table '
                      'goes)')
  recipe = standard_eval.Recipe(
      epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value, lr=_LR.value,
      lr_decay=_LR_DECAY.value, momentum=_MOMENTUM.value,
      weight_decay=_WEIGHT_DECAY.value,
      dsa=augment.from_spec(_DSA.value, _DSA_STRENGTH.value))
  data, d = standard_eval.load(config, _DISTILLED.value, _ARCH.value)
  # Inputs checked, a table made from other ones is refused, not replaced.
  inputs = ml_collections.ConfigDict({
      'config': workdir.without(config.to_dict(), train.HOW_NOT_WHAT),
      'distilled': os.path.abspath(_DISTILLED.value), 'arch': _ARCH.value,
      'num_models': num_models, 'recipe': dataclasses.asdict(recipe)})
  workdir.guard(_WORKDIR.value, inputs, _FRESH.value,
                saved_as='standard_eval_inputs.json',
                outputs=standard_eval.OUTPUTS)
  rows = standard_eval.evaluate_set(config, data, d, _ARCH.value, num_models,
                                    recipe)
  print(standard_eval.write_outputs(_WORKDIR.value, rows, recipe,
                                    _DISTILLED.value))
  return rows


def main(argv):
  del argv
  config = _CONFIG.value
  num_models = _NUM_MODELS.value or config.eval.num_models
  if _OUTPUT.value and os.path.abspath(_OUTPUT.value) == os.path.abspath(
      _DISTILLED.value):
    raise ConfigError(f'--output {_OUTPUT.value} is the distilled set itself; '
                      'give another path for the results')
  if _PROTOCOL.value == 'paper':
    misplaced = [f'--{f.name}' for f in STANDARD_ONLY if f.present]
    if misplaced:
      raise ConfigError(f'{", ".join(misplaced)}: for --protocol standard '
                        'only')
  if _PROTOCOL.value == 'standard':
    results = _standard(config, num_models)
  else:
    results = train.evaluate_distilled_file(config, _DISTILLED.value,
                                            num_models)
    acc = results['test_accuracy']
    print(f"test_accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
          f"over {acc['n_models']} models")
  if _OUTPUT.value:
    workdir.write_json(_OUTPUT.value, results)


if __name__ == '__main__':
  flags.run(main)
