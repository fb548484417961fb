"""CIFAR-10 with AlexCifarNet: 10 steps x 3 epochs, one image per class per step.

Variants, picked as `--config configs/cifar10.py:VARIANT`:
  fixed  (default) one fixed Xavier init.
  random 4 fresh Xavier inits per iteration, evaluated on 200 held-out inits.
  quick  a short fixed-init run to check the set-up.

The offline copy in ../shared/data is a lossy JPEG copy of CIFAR-10: report
its numbers as "CIFAR-10 (JPEG copy)".
"""

import ml_collections

from configs import default

VARIANTS = default.VARIANTS


def get_config(variant: str = 'fixed') -> ml_collections.ConfigDict:
  config = default.get_config(variant)
  config.data.name = 'cifar10'
  config.model.name = 'alexcifarnet'
  config.distill.lr_init = 0.01
  if variant == 'quick':
    config.num_iterations = 100
    config.optim.decay_every = 50
  return config
