"""MNIST with LeNet: 10 steps x 3 epochs, one image per class per step.

Variants, picked as `--config configs/mnist.py:VARIANT`:
  fixed  (default) one fixed Xavier init; the paper's Table 1 setting,
         6,000 iterations.
  random 4 fresh Xavier inits per iteration, images started from real ones;
         evaluated on 200 held-out inits.
  quick  a short fixed-init run, under 2 minutes on 2 CPU cores.
"""

import ml_collections

from configs import default

VARIANTS = default.VARIANTS


def get_config(variant: str = 'fixed') -> ml_collections.ConfigDict:
  config = default.get_config(variant)
  config.data.name = 'mnist'
  config.model.name = 'lenet'
  if variant == 'fixed':
    # 1,500 iterations plateau at 93-95% (float rounding alone moves a run
    # by a point); 6,000 reach 96.9% (README), past the paper's 94.4.
    config.num_iterations = 6000
    config.optim.decay_every = 2000
  return config
