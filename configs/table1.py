"""Table 1 of the paper: distilled data against real-image baselines.

Variants, picked as `--config configs/table1.py:VARIANT`:
  full   (default) the paper's protocol, the natural default for a reference
         implementation: 200 held-out models, 10 sets, 50 candidates, and our
         runs under configs/*.py:paper_fixed and :paper_random (one batch of
         100 images, 2,000 GD steps on MNIST, 50 on CIFAR-10; a GPU job).
  cpu    the same table with fewer held-out models and sets and our runs in
         the official code's default layout (10 steps x 3 epochs), sized for
         CPUs (its times: docs/paper_results.md).
  quick  a smoke run of every column (numbers meaningless).
"""

import ml_collections

from configs import cifar10
from configs import mnist

VARIANTS = ('full', 'cpu', 'quick')


def _dataset(module, step_counts, variant):
  ds = ml_collections.ConfigDict()
  layout = 'paper' if variant == 'full' else 'official'
  ds.fixed = module.get_config(f'{layout}_fixed')  # The 'ours, fixed init' run.
  ds.random = module.get_config(f'{layout}_random')  # The 'ours, random init' run.
  ds.step_counts = step_counts  # GD-step grid of the CNN baselines (comma-separated).
  if variant == 'quick':
    for run in (ds.fixed, ds.random):
      run.num_iterations = 10
      run.eval.num_models = 4
      run.eval.num_models_during = 2
      run.eval_every = 0
      run.checkpoint_every = 10
      run.distill.num_inits = 2
    ds.step_counts = ','.join(step_counts.split(',')[:2])
  return ds


def get_config(variant: str = 'full') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds the baselines' sets and held-out models.
  config.datasets = 'mnist,cifar10'  # Comma-separated rows of the table.
  config.mnist = _dataset(mnist, '1,100,500,1000,2000', variant)
  config.cifar10 = _dataset(cifar10, '1,5,10,20,500', variant)

  b = config.baselines = ml_collections.ConfigDict()
  b.per_class = 10  # Real images per class in every baseline set.
  b.num_sets = 10  # Random-real sets and k-means++ runs evaluated.
  b.num_candidates = 50  # Random sets the optimized-real baseline picks from.
  b.num_selected = 10  # Sets it keeps.
  b.selection_models = 20  # Held-out models it scores candidates on...
  b.selection_images = 1024  # ...with this many random training images.
  b.num_models = 200  # Held-out models per set for every CNN baseline.
  b.lrs = '0.001,0.003,0.01,0.03,0.1,0.3'  # Tried, and the distilled lrs.
  b.knn_ks = '1,3'  # Neighbours for the KNN baselines.
  b.knn_metrics = 'l1,l2'  # Distances for the KNN baselines.

  if variant == 'cpu':
    b.num_sets = 3
    b.num_candidates = 10
    b.num_selected = 3
    b.selection_models = 4
    b.num_models = 10
    config.mnist.random.eval.num_models = 200
  elif variant == 'quick':
    config.datasets = 'mnist'
    b.num_sets = 2
    b.num_candidates = 3
    b.num_selected = 2
    b.selection_models = 2
    b.selection_images = 256
    b.num_models = 2
    b.lrs = '0.01,0.1'
  return config
