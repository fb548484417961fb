"""Table 2 of the paper: adapting pretrained LeNets among digit datasets.

Needs pools from `experiments.pretrain` in `<pools_dir>/<source>/`, e.g.
  python -m experiments.pretrain --config configs/pretrain.py:mnist --workdir POOLS/mnist
  python -m experiments.pretrain --config configs/pretrain.py:usps --workdir POOLS/usps
then `python -m experiments.table2 --config configs/table2.py --workdir DIR
--config.pools_dir=POOLS`. Variants: `full` (default: the paper's table,
the natural default for a reference implementation; not exactly the paper's
protocol, see the pools below; its distillation settings as the paper's:
100 distilled images in 10 steps x 3 epochs, Adam lr 0.001, the official
code's 400 epochs of the target's 1,024-image batches; pools of 200
nets, not 2,000, and the other differences in docs/deviations.md; a GPU
job), `cpu` (a reduced
protocol for CPUs: pools of 8 + 8 nets, 8 held-out nets, 4 sets, 600
distillation iterations; docs/paper_results.md), `quick` (smoke). The rows
are named in ddistill/paper/table2.py (ROWS: row -> source, target).
"""

import ml_collections

from configs import default
from configs import mnist
from configs import table1

VARIANTS = ('full', 'cpu', 'quick')


def _distill(variant: str) -> ml_collections.ConfigDict:
  """Our distillation run, for every row (target) and column (init mode)."""
  run = mnist.get_config('official_fixed')
  run.data.name = 'mnist'  # Set per row: the row's target.
  run.data.as_mnist = True  # Every digit set as 28x28 grayscale MNIST.
  run.data.digit_box = 0  # Side the digits fill in 28x28; 0 = the dataset's (USPS 20).
  run.distill.init_mode = 'fixed_pretrained'  # Set per column: fixed_ or random_pretrained.
  run.distill.pretrained_dir = ''  # Set per row: <pools_dir>/<the row's source>.
  run.distill.image_init = 'normal'  # N(0, 1), as the paper for pretrained.
  run.distill.steps, run.distill.epochs = 10, 3  # 100 images, 30 GD steps.
  if variant == 'full':
    run.optim.lr = 0.001  # S-1: Adam, lr 0.001.
    run.data.sampling = 'epochs'  # Shuffled epochs, as the official loader.
  if variant == 'cpu':
    run.num_iterations = 600
    run.optim.decay_every = 200
    run.eval_every = 0
  if variant == 'quick':
    run.num_iterations = 5
    run.checkpoint_every = 5
    run.eval_every = 0
    run.distill.num_inits = 2
  return run


def get_config(variant: str = 'full') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds the baselines' sets.
  config.pools_dir = ''  # Holds <source>/ pools written by experiments.pretrain.
  config.rows = 'mnist_to_usps,usps_to_mnist,svhn_to_mnist'  # Table rows.
  config.num_models = 200  # Held-out pretrained nets every column is tested on.
  config.passes = '1,3,5'  # Passes over a baseline set (paper's grid).
  config.full_target_epochs = 5  # Fine-tuning on the whole target set.
  config.full_target_lr = 2e-4  # Its Adam step size...
  config.full_target_batch_size = 128  # ...and batch.
  config.full_target_models = 10  # Held-out nets fine-tuned for that column.
  # Outer epochs over each row's target training set, in batches of
  # run.real_batch_size: they set the row's run.num_iterations (0 = keep it)...
  config.target_epochs = default.OFFICIAL_EPOCHS if variant == 'full' else 0
  # ...and epochs between halvings of run.optim.lr, run.optim.decay_every
  # (0 = keep it).
  config.target_decay_epochs = (default.OFFICIAL_DECAY_EPOCHS
                                if variant == 'full' else 0)
  config.baselines = table1.get_config('full').baselines  # Sets and lrs...
  del config.baselines.num_models  # ...tested on the num_models nets above.
  del config.baselines.knn_ks, config.baselines.knn_metrics  # No KNN columns.
  config.run = _distill(variant)  # Our distillation.
  if variant == 'cpu':
    config.rows = 'usps_to_mnist,mnist_to_usps'
    config.num_models = 8
    config.full_target_epochs = 2
    config.full_target_models = 4
    b = config.baselines
    b.num_sets, b.num_candidates, b.num_selected = 4, 20, 4
    b.selection_models = 4
  if variant == 'quick':
    config.rows = 'usps_to_mnist'
    config.num_models = 2
    config.full_target_epochs = 1
    config.full_target_models = 2
    b = config.baselines
    b.num_sets, b.num_candidates, b.num_selected = 2, 2, 1
    b.selection_models, b.selection_images = 2, 128
    b.lrs = '0.01'
  return config
