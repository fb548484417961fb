r"""Table 3 of the paper: an ImageNet AlexNet adapted to PASCAL-VOC and CUB-200.

Needs ImageNet AlexNet weights (experiments/convert_torchvision_alexnet.py), a
pool per target, and VOC / CUB prepared for tfds:
  python -m experiments.pretrain --config configs/pretrain.py:imagenet_alexnet \
      --config.weights=alexnet.npz --config.data.name=voc2007 --workdir POOLS/voc2007
  (the same with cub200)
  python -m experiments.table3 --config configs/table3.py --workdir DIR \
      --config.pools_dir=POOLS
Variants: `full` (default: the paper's table, the natural default for a
reference implementation; one distilled image per class in 3 GD steps,
Adam lr 0.001 (S-1), the official command's 200 epochs of 1,024-image
batches halved every 30; other differences in docs/deviations.md; a GPU
job), `quick` (a smoke run).
"""

import ml_collections

from configs import default
from configs import table1

VARIANTS = ('full', 'quick')


def get_config(variant: str = 'full') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds the baselines' sets and the fine-tuning.
  config.pools_dir = ''  # Holds <target>/ pools (pretrain.py:imagenet_alexnet).
  config.rows = 'voc2007,cub200'  # Table rows (targets), comma-separated.
  config.gd_steps = '1,3,5'  # GD steps of the baselines (paper's grid).
  config.full_target_epochs = 5  # Fine-tuning on the whole target set...
  config.full_target_lr = 1e-4  # ...with Adam at this step size...
  config.full_target_batch_size = 64  # ...in batches of this size.
  config.full_target_models = 1  # The fixed pretrained net, fine-tuned.
  # Outer epochs over each row's training set, in batches of
  # run.real_batch_size: they set the row's run.num_iterations (0 = keep it)...
  config.target_epochs = 200 if variant == 'full' else 0
  # ...and epochs between halvings of run.optim.lr, run.optim.decay_every
  # (0 = keep it). Both from the official docs/advanced.md command.
  config.target_decay_epochs = 30 if variant == 'full' else 0

  run = config.run = default.get_config('official_fixed')  # Our distillation.
  run.data.name = 'voc2007'  # Set per row.
  run.data.image_size = 224  # AlexNet's input size.
  run.data.augment = 'resized_crop_flip'  # As the official code's VOC/CUB loaders.
  run.model.name = 'alexnet'
  run.distill.init_mode = 'fixed_pretrained'
  run.distill.pretrained_dir = ''  # Set per row: <pools_dir>/<the row>.
  run.distill.images_per_class = 1  # One distilled image per class...
  run.distill.steps, run.distill.epochs = 1, 3  # ...applied in 3 GD steps.
  run.distill.image_init = 'normal'
  run.distill.lr_init = 0.001  # Pretrained nets take small steps.
  run.real_batch_size = 1024  # Real images per outer iteration.
  run.data.sampling = 'epochs'  # Shuffled epochs, as the official loader.
  run.optim.lr = 0.001  # S-1: Adam, lr 0.001.
  run.eval_every = 0

  b = config.baselines = table1.get_config('full').baselines
  # Every baseline trains, and optimized real scores its candidates on, the
  # one fixed pretrained net.
  del b.num_models, b.selection_models, b.knn_ks, b.knn_metrics  # No KNN.
  b.per_class = 1  # As many real images as distilled ones.
  b.num_sets = 10  # Paper: results over 10 runs.
  if variant == 'quick':
    config.rows = 'voc2007'
    config.gd_steps = '1,3'
    config.full_target_epochs = 1
    config.full_target_batch_size = 4
    run.data.image_size = 64
    run.num_iterations = 2
    run.checkpoint_every = 2
    run.real_batch_size = 8
    b.num_sets, b.num_candidates, b.num_selected = 2, 2, 1
    b.selection_images = 8
    b.lrs = '0.001'
  return config
