"""CIFAR-10 with AlexCifarNet; real batches reflect-padded, cropped and flipped.

Variants, picked as `--config configs/cifar10.py:VARIANT`:
  paper_fixed     the paper's Table 1 setting: one batch of 10 images per
                  class applied for 50 GD steps (one learned lr each), one
                  fixed Xavier init, Adam lr 0.001, images from real ones.
  paper_random    the same with 4 fresh Xavier inits per iteration;
                  evaluated on 200 held-out inits.
  official_fixed  (default) the official code's default layout: 10 steps x
                  3 epochs, one image per class per step; one fixed init.
  official_random the same layout with 4 fresh inits per iteration.
  quick           a short official_fixed run to check the set-up.
  strong_convnet10  beyond the paper, a GPU job: ConvNet-3, random inits, 10
                  images per class (10 steps of one per class, 10 epochs),
                  raw learned labels, DSA augmentation, truncated unrolls.

The offline copy in ../shared/data is a lossy JPEG copy of CIFAR-10: report
its numbers as "CIFAR-10 (JPEG copy)".
"""

import ml_collections

from configs import default

STRONG_VARIANTS = ('strong_convnet10',)
VARIANTS = default.VARIANTS + default.PAPER_VARIANTS + STRONG_VARIANTS


def get_config(variant: str = 'official_fixed') -> ml_collections.ConfigDict:
  if variant in STRONG_VARIANTS:
    return strong_convnet10()
  config = default.dataset_config(variant, VARIANTS, train_size=50000,
                                  gd_steps=50, paper_lr_init=0.001)
  if variant not in default.PAPER_VARIANTS:
    config.distill.lr_init = 0.01
  config.data.name = 'cifar10'
  config.data.augment = 'crop_flip'  # As the official code's CIFAR-10 loader.
  config.model.name = 'alexcifarnet'
  if variant == 'quick':
    config.num_iterations = 100
    config.optim.decay_every = 50
  return config


def strong_convnet10() -> ml_collections.ConfigDict:
  """Beyond the paper (docs/beyond_the_paper.md): the field's usual CIFAR-10
  benchmark, ConvNet-3 with 10 images per class, sized for a lent GPU."""
  config = get_config('official_random')
  config.model.name = 'convnet'
  config.distill.steps = 10  # 10 steps of one image per class...
  config.distill.epochs = 10  # ...applied 10 times: 100 GD steps.
  config.distill.label_mode = 'raw'  # Unnormalised label vectors, as the fork.
  config.distill.truncate_window = 20  # Differentiate a random window of 20 of 100.
  config.distill.dsa = 'color,crop,cutout,flip,scale,rotate'
  config.data.augment = 'none'  # DSA augments the real batch already.
  config.num_iterations = 1500
  config.optim.decay_every = 500
  config.eval_every = 250
  return config
