"""Every field of a distillation run, with its default, one per line.

Experiment configs (mnist.py, ...) start from `get_config()` here and change
what differs. Any field can be overridden on the command line, for example
`--config.distill.steps=20 --config.optim.lr=0.005`.
"""

import ml_collections

# The official code's default layout (10 steps x 3 epochs, one image per class
# per step), not the paper's Table 1 setting (see paper_* in mnist.py and
# cifar10.py): official_fixed, one init for the whole run; official_random,
# 4 fresh inits per iteration, images started from real ones; quick, a short
# official_fixed run.
VARIANTS = ('official_fixed', 'official_random', 'quick')


def get_config(variant: str = 'official_fixed') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.seed = 0  # The one seed; every random key is split or folded from it.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'mnist'  # mnist | cifar10 | usps | svhn | cifar100 | voc2007 | cub200.
  config.data.source = 'auto'  # auto (local if a data dir is set) | local | tfds.
  config.data.data_dir = ''  # Folder holding mnist/, cifar10/...; '' = $DDISTILL_DATA_DIR.
  config.data.cache_dir = ''  # Decoded-JPEG cache; '' = $DDISTILL_CACHE_DIR or ~/.cache/ddistill.
  config.data.tfds_data_dir = ''  # Passed to tfds as its data_dir; '' = tfds's default.
  config.data.as_mnist = False  # Digits as MNIST's: 28x28 grayscale, MNIST normalization (usps, svhn).
  config.data.digit_box = 0  # With as_mnist: side the digits fill in 28x28; 0 = the dataset's (USPS 20).
  config.data.image_size = 224  # voc2007, cub200: side the images are resized to.
  config.data.zca = 0.0  # ZCA-whiten images with this eps, fit on the training images less data.val_size's (KIP, MTT, RaT-BPTT on CIFAR); 0 = off.
  config.data.val_size = 0  # Training images held out to pick the result: each evaluation scores the set on them and the best is kept; 0 = keep the last.
  config.data.augment = 'none'  # Real batches, inside the jitted step: none | crop_flip | resized_crop_flip.
  config.data.sampling = 'iid'  # Real batches: iid (with replacement) | epochs (shuffled, without, as the official code).

  config.model = ml_collections.ConfigDict()
  config.model.name = 'lenet'  # lenet | alexcifarnet | mlp | convnet | resnet18_gn | alexnet.
  config.model.init = 'xavier_normal'  # xavier_normal | xavier_uniform | kaiming | orthogonal.
  config.model.init_gain = 1.0  # Scale of the initialization.
  config.model.conv_impl = 'auto'  # Inner GD steps: auto (per backend, model and step size: docs/running.md) | xla | matmul | banded | split | blocks.
  config.model.first_order_conv_impl = 'auto'  # Real batch and evaluation (differentiated once): auto (CPU: blocks for LeNet, else split) | same choices.

  config.distill = ml_collections.ConfigDict()
  config.distill.init_mode = 'fixed'  # fixed: one init for the whole run; random: fresh ones each iteration;
  # fixed_pretrained / random_pretrained: one / fresh networks of a pretrained pool.
  config.distill.pretrained_dir = ''  # The pool (experiments.pretrain) for the pretrained modes.
  config.distill.num_inits = 4  # Inits sampled per outer iteration when init_mode is random or random_pretrained.
  config.distill.steps = 10  # Distinct GD steps, each with its own images.
  config.distill.epochs = 3  # Passes over the steps; steps * epochs learned lrs.
  config.distill.images_per_class = 1  # Distilled images per class in each step.
  config.distill.image_init = 'normal'  # normal: N(0, 1) | real: random real images of the class.
  config.distill.lr_init = 0.02  # Starting value of every learned inner lr.
  config.distill.batching = 'auto'  # How inits are batched: auto | vmap | map.
  config.distill.remat = True  # Recompute inner steps in the backward pass: memory linear in steps.
  config.distill.real_chunk = -1  # Real images per pass of the outer loss (same gradient): -1 = auto (128 on CPU, all elsewhere) | 0 = all | n.
  config.distill.label_mode = 'hard'  # hard: fixed class labels | learned: label logits learned with the images (soft labels) | raw: unnormalised label targets learned, started one-hot (Soft-Label DD's code).
  config.distill.label_init_scale = 4.0  # learned: logits start as this times the one-hot (softmax 0.86 on the class, of 10); raw starts at the one-hot.
  config.distill.truncate_window = 0  # Unroll to a random end in [W, T], differentiate its last W steps; 0 = all T = steps * epochs.
  config.distill.dsa = ''  # Siamese augmentation (DSA) of distilled and real images alike: '' (off) or transforms, e.g. 'color,crop,cutout,scale,rotate'.
  config.distill.dsa_strength = 1.0  # Multiplies DSA's magnitudes (ddistill/augment.py); 0 = identity.
  config.distill.dsa_mode = 'one'  # one: one transform of the list drawn per iteration (DSA's default) | all: each in turn.

  config.optim = ml_collections.ConfigDict()
  config.optim.lr = 0.01  # Adam step size for images, lrs and learned labels.
  config.optim.b1 = 0.5  # Adam beta1, as in the paper's code.
  config.optim.decay_every = 500  # Iterations between step decays of optim.lr.
  config.optim.decay_factor = 0.5  # Multiplier at each decay.
  config.optim.ema_decay = 0.0  # Evaluate, keep and save a moving average of the set (optax.ema, debiased) with this decay; 0 = the set itself.

  config.num_iterations = 1500  # Outer iterations.
  config.real_batch_size = 1024  # Real images per outer iteration.
  config.log_every = 50  # Iterations between metric lines.
  config.eval_every = 500  # Iterations between held-out evaluations; 0 = only at the end.
  config.checkpoint_every = 250  # Iterations between checkpoints (and at the end).
  config.checkpoints_to_keep = 2  # Older checkpoints are deleted.

  config.eval = ml_collections.ConfigDict()
  config.eval.num_models = 200  # Fresh held-out inits for the final random-init result.
  config.eval.num_models_during = 20  # Held-out inits for evaluations while training.

  if variant == 'official_random':
    config.distill.init_mode = 'random'
    config.distill.image_init = 'real'  # The paper's default for random inits.
    # Random inits give noisier meta-gradients: a smaller, slower-decaying
    # step and more iterations (docs/paper_results.md).
    config.optim.lr = 0.005
    config.optim.decay_every = 1000
    config.num_iterations = 2000
  elif variant == 'quick':
    config.num_iterations = 200
    config.optim.decay_every = 100
    config.eval_every = 0
  return config


# The paper's Table 1 protocol (Section 4.1.1, appendix S-1), for paper_fixed
# and paper_random in the dataset configs.
PAPER_VARIANTS = ('paper_fixed', 'paper_random')
OFFICIAL_EPOCHS = 400  # Outer epochs of real 1,024-image batches (official code).
OFFICIAL_DECAY_EPOCHS = 40  # Adam's lr halves every so many epochs (official code).


def dataset_config(variant: str, variants: tuple[str, ...], *,
                   train_size: int, gd_steps: int,
                   paper_lr_init: float) -> ml_collections.ConfigDict:
  """The start of a dataset config: `paper_*` or one of VARIANTS."""
  if variant not in variants:
    raise ValueError(f'unknown config variant {variant!r}; known: {variants}')
  if variant in PAPER_VARIANTS:
    return paper_protocol(get_config(), variant, train_size, gd_steps,
                          paper_lr_init)
  return get_config(variant)


def paper_protocol(config: ml_collections.ConfigDict, variant: str,
                   train_size: int, gd_steps: int,
                   lr_init: float) -> ml_collections.ConfigDict:
  """One batch of 10 images per class applied `gd_steps` times, as the paper.

  Outer iterations are as many as the official code's updates: epochs of
  ceil(train_size / 1024) batches, its last one partial. Our sampler draws
  full batches of 1,024 only, so they span a few more epochs (400 give 407
  on MNIST; docs/deviations.md).
  """
  batches_per_epoch = -(-train_size // 1024)
  config.distill.steps = 1  # One batch of distilled images...
  config.distill.images_per_class = 10  # ...10 per class...
  config.distill.epochs = gd_steps  # ...applied this often, one lr each.
  config.distill.image_init = 'real'  # S-1: random real samples.
  config.distill.lr_init = lr_init  # The official README's --distill_lr.
  config.distill.init_mode = variant.removeprefix('paper_')
  config.distill.num_inits = 4  # S-1: 4 to 16 inits per iteration (random).
  config.optim.lr = 0.001  # S-1: Adam, lr 0.001...
  config.optim.b1 = 0.5  # ...beta1 0.5 (official code).
  config.optim.decay_factor = 0.5  # Official code: halved...
  config.optim.decay_every = OFFICIAL_DECAY_EPOCHS * batches_per_epoch  # ...every 40 epochs.
  config.num_iterations = OFFICIAL_EPOCHS * batches_per_epoch
  config.real_batch_size = 1024
  config.data.sampling = 'epochs'  # Shuffled epochs, as the official loader.
  config.log_every = 10
  config.eval_every = 100
  config.checkpoint_every = 20  # Long iterations: lose little to a kill.
  return config
