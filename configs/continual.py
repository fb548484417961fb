"""Continual learning on permuted MNIST (the paper's Table 4).

`python -m experiments.continual --config configs/continual.py:VARIANT`
Variants: sgd, ewc, gem (10 real images per task), gem40, gem50,
gem_distilled (10 distilled images per task), quick (a smoke run); and the
same with a cifar100_ prefix, plus cifar100_icarl, cifar100_icarl40,
cifar100_icarl50: split CIFAR-100 (20 tasks of 5 classes, tfds) with a
reduced ResNet-18 with group norm (a GPU job).
"""

import ml_collections

_CIFAR100 = ('sgd', 'ewc', 'gem', 'gem40', 'gem50', 'gem_distilled', 'icarl',
             'icarl40', 'icarl50')
VARIANTS = ('sgd', 'ewc', 'gem', 'gem40', 'gem50', 'gem_distilled',
            'quick') + tuple(f'cifar100_{v}' for v in _CIFAR100)


def get_config(variant: str = 'gem') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; known: {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.seeds = '0,1,2'  # Comma-separated: one run per seed, mean ± std over them.
  config.stream = 'permuted_mnist'  # permuted_mnist | split_cifar100.
  config.num_tasks = 20  # Tasks (split_cifar100: the first so many).
  config.train_per_task = 1000  # Training images per permuted-MNIST task.
  config.classes_per_task = 5  # Classes per split-CIFAR-100 task.

  config.data = ml_collections.ConfigDict()
  config.data.data_dir = ''  # Folder holding mnist/; '' = $DDISTILL_DATA_DIR.
  config.data.tfds_data_dir = ''  # tfds's data_dir for CIFAR-100; '' = tfds's default.

  config.model = ml_collections.ConfigDict()
  config.model.name = 'mlp'  # mlp: two hidden layers of 100 ReLU units | resnet18_gn.
  config.model.init = 'xavier_normal'  # Initialization of the learner.

  learner = config.learner = ml_collections.ConfigDict()
  learner.method = 'gem'  # sgd | ewc | gem | icarl (class-incremental only).
  learner.memory = 'real'  # gem's memory: real | distilled.
  learner.memory_per_task = 10  # Memory images per task (real).
  learner.lr = 0.1  # SGD step size (paper: 0.1).
  learner.batch_size = 10  # One pass over each task in batches of this size.
  learner.gem_margin = 0.0  # GEM's γ, when gem_margins has one value.
  learner.ewc_lambda = 0.0  # EWC penalty strength, when one value.
  learner.ewc_samples = 1000  # Examples per task for EWC's Fisher.
  learner.icarl_reg = 0.0  # iCaRL's distillation weight, when one value.

  # The hyperparameter grid, comma-separated; the best mean over seeds is
  # reported.
  config.gem_margins = '0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1'  # Paper's.
  # EWC strengths tried. Our Fisher is the mean squared per-example gradient,
  # larger than the GEM code's squared batch gradient, so the grid reaches
  # lower than that code's.
  config.ewc_lambdas = '0.3,1,3,10,100,1000'
  config.icarl_regs = '0.001,0.003,0.01,0.03,0.1,0.3,1'  # Paper's S-1.1 range.

  # Distilled memory (gem_distilled): per task, images_per_class images of
  # each class, one batch applied for gd_steps steps with learned lrs,
  # trained over num_inits random Xavier inits per iteration.
  d = learner.distill = ml_collections.ConfigDict()
  d.images_per_class = 1  # 10 classes -> 10 images per task.
  d.gd_steps = 2000  # As in the paper.
  d.lr_init = 0.02  # Starting inner lr.
  d.optim = ml_collections.ConfigDict()  # The engine's optimizer, as configs/default.py's.
  d.optim.lr = 0.01  # Adam step size...
  d.optim.b1 = 0.5  # ...its beta1, as in distillation...
  d.optim.decay_every = 100  # ...and iterations between decays of optim.lr...
  d.optim.decay_factor = 0.5  # ...by this factor.
  d.num_inits = 4  # Random inits per iteration.
  d.batch_size = 1000  # Real images per iteration (the whole task).
  d.real_chunk = 0  # Real images per pass of the outer loss, as configs/default.py's; 0 = all (chunks untimed on these small nets).
  d.iterations = 300  # Outer iterations per task.

  base = variant[len('cifar100_'):] if variant.startswith('cifar100_') \
      else variant
  if base == 'sgd':
    learner.method = 'sgd'
  elif base == 'ewc':
    learner.method = 'ewc'
  elif base.startswith('icarl'):
    learner.method = 'icarl'
  elif base == 'gem_distilled':
    learner.memory = 'distilled'
  if base in ('gem40', 'gem50', 'icarl40', 'icarl50'):
    learner.memory_per_task = int(base[-2:])
  if variant.startswith('cifar100'):
    config.stream = 'split_cifar100'
    config.model.name = 'resnet18_gn'  # Width 20, as GEM's reduced ResNet-18.
    d.images_per_class = 2  # 5 classes -> 10 images per task.
    d.gd_steps = 200  # As in the paper for CIFAR-100.
    d.batch_size = 256
  elif variant == 'quick':
    config.seeds = '0'
    config.num_tasks = 3
    config.train_per_task = 100
    config.gem_margins = '0,0.5'
    learner.memory = 'distilled'
    d.gd_steps = 5
    d.iterations = 3
    d.batch_size = 100
  return config
