"""Figure 3 of the paper: accuracy against the number of GD steps.

The number of distilled images is fixed (one batch of `images_per_class`
images per class); it is applied for each count of GD steps in `gd_steps`,
each step with its own learned lr, and every count is a separate
distillation run. `python -m experiments.figure3 --config configs/figure3.py`

Variants: `:mnist` (default), `:cifar10`, `:quick` (a smoke run).
"""

import ml_collections

from configs import cifar10
from configs import mnist

VARIANTS = ('mnist', 'cifar10', 'quick')


def get_config(variant: str = 'mnist') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.gd_steps = '1,2,5,10,20,40'  # x axis: GD steps per run, comma-separated.
  config.init_modes = 'fixed,random'  # One curve per init mode: fixed | random.
  module = cifar10 if variant == 'cifar10' else mnist
  # The distillation run behind every point; distill.epochs is set per point.
  config.run = module.get_config('official_fixed')
  config.run.distill.steps = 1  # One batch of images, reused every GD step...
  config.run.distill.images_per_class = 10  # ...of 10 images per class.
  config.run.distill.init_mode = 'fixed'  # Set per curve.
  config.run.distill.image_init = 'real'
  config.run.num_iterations = 400
  config.run.optim.decay_every = 200
  config.run.eval_every = 0
  config.run.eval.num_models = 50
  if variant == 'quick':
    config.gd_steps = '1,3'
    config.run.num_iterations = 5
    config.run.checkpoint_every = 5
    config.run.eval.num_models = 2
    config.run.eval.num_models_during = 2
    config.run.distill.num_inits = 2
  return config
