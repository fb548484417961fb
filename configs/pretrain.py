"""Pretraining a pool of LeNets on a digit dataset (for Tables 2 and 3).

`python -m experiments.pretrain --config configs/pretrain.py:SOURCE --workdir DIR`
SOURCE: mnist (default), usps or svhn; every source is in MNIST's format
(28x28 grayscale, MNIST normalization) so the nets take any of them. The
optimizer, batch, epochs, lr and decay follow the official code (its
docs/advanced.md and defaults). `:quick` is a smoke run.

`:imagenet_alexnet` trains nothing: it makes a pool from ImageNet AlexNet
weights (`--config.weights=alexnet.npz`, see
experiments/convert_torchvision_alexnet.py) with a new classifier for
`--config.data.name` (voc2007 or cub200), for Table 3.
"""

import ml_collections

from configs import default

VARIANTS = ('mnist', 'usps', 'svhn', 'quick', 'imagenet_alexnet')
# (epochs, decay every so many epochs), from the paper's official code.
SCHEDULES = {'mnist': (40, 20), 'usps': (130, 40), 'svhn': (65, 20)}


def get_config(variant: str = 'mnist') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  source = variant if variant in SCHEDULES else 'mnist'
  config = ml_collections.ConfigDict()
  config.seed = 0  # Inits and batch orders of every net.
  config.data = default.get_config().data  # Where and how to read the data.
  del config.data.val_size, config.data.augment, config.data.sampling  # Read by distillation only.
  config.data.name = source
  config.data.as_mnist = True  # 28x28 grayscale, MNIST-normalized.
  config.data.digit_box = 0  # Side the digits fill in 28x28; 0 = the dataset's (USPS 20).
  config.model = default.get_config().model  # LeNet, Xavier init.
  config.num_train = 200  # Nets distillation samples from (paper: 2,000).
  config.num_heldout = 200  # Nets results are reported on (paper: 200).
  epochs, decay_every = SCHEDULES[source]
  config.epochs = epochs  # Passes over the training set.
  config.batch_size = 1024  # Images per step.
  config.optim = ml_collections.ConfigDict()
  config.optim.lr = 2e-4  # Adam step size...
  config.optim.b1 = 0.5  # ...and beta1 (beta2 0.999).
  config.optim.decay_every = decay_every  # Epochs (not steps) between decays of optim.lr...
  config.optim.decay_factor = 0.5  # ...by this factor.
  config.nets_per_chunk = 50  # Nets trained together (vmap); bounds memory.
  config.weights = ''  # ImageNet AlexNet .npz (imagenet_alexnet only).
  config.new_classifier = 'official'  # Its new classifier: official (zero weights, bias 1) | random.
  if variant == 'imagenet_alexnet':
    config.data.name = 'voc2007'  # The target: voc2007 | cub200.
    config.data.as_mnist = False
    config.data.image_size = 224  # AlexNet's input size.
    config.model.name = 'alexnet'
    config.num_train = 1  # Fixed pretrained: one net to distill for...
    config.num_heldout = 1  # ...and one to test (the same net, with an official classifier).
  if variant == 'quick':
    config.num_train = 2
    config.num_heldout = 2
    config.epochs = 1
    config.nets_per_chunk = 2
  return config
