"""MNIST with LeNet: 10 steps x 3 epochs, one image per class per step.

Variants, picked as `--config configs/mnist.py:VARIANT`:
  fixed  (default) one fixed Xavier init; the paper's Table 1 setting.
  random 4 fresh Xavier inits per iteration, evaluated on 200 held-out inits.
  quick  a short fixed-init run, under 2 minutes on 2 CPU cores.
"""

import ml_collections

from configs import default

VARIANTS = ('fixed', 'random', 'quick')


def get_config(variant: str = 'fixed') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of configs/mnist.py; '
                     f'known: {VARIANTS}')
  config = default.get_config()
  config.data.name = 'mnist'
  config.model.name = 'lenet'
  if variant == 'random':
    config.distill.init_mode = 'random'
    config.distill.num_inits = 4
  elif variant == 'quick':
    config.num_iterations = 200
    config.optim.decay_every = 100
    config.eval_every = 0
  return config
