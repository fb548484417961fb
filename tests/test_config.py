"""Bad configs are refused before any compute, naming the field."""

import ast
import importlib
import pathlib
import re

import pytest

from configs import cifar10 as cifar10_config
from configs import mnist as mnist_config
from configs import table2 as table2_config
from configs import table3 as table3_config
from ddistill import config_checks
from ddistill.paper import adaptation
from ddistill.continual import runner as continual_runner
from ddistill.errors import ConfigError
from ddistill.paper import baselines
from ddistill.paper import figure3
from ddistill.paper import pretraining
from ddistill.paper import table1
from ddistill.paper import table2
from ddistill.paper import table3

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('module', [mnist_config, cifar10_config])
def test_shipped_variants_are_valid(module):
  for variant in module.VARIANTS:
    config_checks.validate(module.get_config(variant))


# The paper's Table 1 protocol, field by field: Section 4.1.1, Table 1's
# caption, appendix Figures 4 and 5 (GD steps), appendix S-1 (optimizer, image
# init, inits per iteration), and the official README (initial distilled lr).
PAPER = {
    mnist_config: {'applied_steps': 2000, 'lr_init': 0.02, 'augment': 'none'},
    cifar10_config: {'applied_steps': 50, 'lr_init': 0.001,
                     'augment': 'crop_flip'},
}


@pytest.mark.parametrize('module', [mnist_config, cifar10_config])
@pytest.mark.parametrize('init', ['fixed', 'random'])
def test_paper_variants_match_the_paper(module, init):
  config = module.get_config(f'paper_{init}')
  paper = PAPER[module]
  d = config.distill
  assert d.steps == 1  # One batch of distilled images...
  assert d.images_per_class == 10  # ...of 10 per class...
  assert d.steps * d.epochs == paper['applied_steps']  # ...applied T times,
  assert d.init_mode == init
  assert d.image_init == 'real'
  assert d.lr_init == paper['lr_init']
  assert config.optim.lr == 0.001 and config.optim.b1 == 0.5
  assert config.real_batch_size == 1024
  assert config.data.sampling == 'epochs'
  assert config.data.augment == paper['augment']
  if init == 'random':
    assert d.num_inits == 4
    assert config.eval.num_models == 200
  config_checks.validate(config)


def test_paper_fixed10_is_section_4_1_1s_ten_images():
  # "just 10 distilled images (one per class) ... 93.82% on MNIST in 2000 GD
  # steps": paper_fixed with one image per class, nothing else changed.
  config = mnist_config.get_config('paper_fixed10')
  assert config.distill.images_per_class == 1
  reference = mnist_config.get_config('paper_fixed')
  reference.distill.images_per_class = 1
  assert config.to_dict() == reference.to_dict()
  assert config.distill.steps * config.distill.epochs == 2000
  config_checks.validate(config)


@pytest.mark.parametrize('target,train_size,iterations', [
    ('usps', 7291, 400 * 8), ('mnist', 60000, 400 * 59)])
def test_table2_full_runs_the_papers_outer_loop(target, train_size,
                                                iterations):
  # Table 2 (appendix Figures 6 to 8, S-1; official distill_adapt defaults):
  # 100 images in 10 steps x 3 epochs from N(0, 1), Adam lr 0.001, 400
  # epochs of the target's 1,024-image batches, halved every 40.
  config = table2_config.get_config('full')
  runs = table2.row_runs(config, target, 'pools/x')
  for mode, run in runs.items():
    adaptation.outer_loop_in_epochs(config, run, train_size)
    assert run.distill.init_mode == f'{mode}_pretrained'
    assert (run.distill.steps, run.distill.epochs) == (10, 3)
    assert run.distill.images_per_class == 1  # Per class and step: 100 in all.
    assert run.distill.image_init == 'normal'
    assert run.optim.lr == 0.001 and run.optim.b1 == 0.5
    assert run.real_batch_size == 1024 and run.data.sampling == 'epochs'
    assert run.num_iterations == iterations
    assert run.optim.decay_every == iterations // 10
  # The reduced variant keeps its own outer loop.
  cpu_config = table2_config.get_config('cpu')
  cpu = table2.row_runs(cpu_config, target, 'p')['fixed']
  adaptation.outer_loop_in_epochs(cpu_config, cpu, train_size)
  assert (cpu.num_iterations, cpu.optim.decay_every) == (600, 200)


def test_table3_full_runs_the_official_outer_loop():
  # Table 3 (official docs/advanced.md: --epochs 200 --decay_epochs 30, batch
  # 1,024; S-1: Adam lr 0.001), here on a training set of 5,011 images.
  config = table3_config.get_config('full')
  run = config.run.copy_and_resolve_references()
  adaptation.outer_loop_in_epochs(config, run, 5011)
  assert run.num_iterations == 200 * 5 and run.optim.decay_every == 30 * 5
  assert run.real_batch_size == 1024 and run.data.sampling == 'epochs'
  assert run.optim.lr == 0.001
  assert (run.distill.steps, run.distill.epochs) == (1, 3)
  # The smoke variant keeps its own.
  quick = table3_config.get_config('quick')
  run = quick.run.copy_and_resolve_references()
  adaptation.outer_loop_in_epochs(quick, run, 5011)
  assert run.num_iterations == 2


@pytest.mark.parametrize('name', sorted(
    p.stem for p in (ROOT / 'configs').glob('*.py') if p.stem != '__init__'))
def test_unknown_variant_is_an_error(name):
  # configs/linear.py, which has no variants, included: `FILE:quick` names
  # the variant, not a Python error about get_config's arguments.
  module = importlib.import_module(f'configs.{name}')
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    module.get_config('fast')


@pytest.mark.parametrize('field,value,message', [
    ('data.name', 'imagenet9', r"config.data.name = 'imagenet9' is not one of"),
    ('data.source', 'ftp', r'config.data.source'),
    ('model.name', 'vgg', r"config.model.name = 'vgg' is not one of"),
    ('model.init', 'zeros', r'config.model.init '),
    ('model.init_gain', -1.0, r'config.model.init_gain = -1.0 must be'),
    ('model.conv_impl', 'fft', r'config.model.conv_impl'),
    ('distill.init_mode', 'pretrained', r'config.distill.init_mode'),
    ('distill.steps', 0, r'config.distill.steps = 0 must be an integer >= 1'),
    ('distill.steps', -3, r'config.distill.steps = -3'),
    ('distill.epochs', 0, r'config.distill.epochs = 0'),
    ('distill.images_per_class', 0, r'config.distill.images_per_class'),
    ('distill.num_inits', 0, r'config.distill.num_inits'),
    ('distill.image_init', 'zeros', r'config.distill.image_init'),
    ('distill.lr_init', 0.0, r'config.distill.lr_init = 0.0'),
    ('distill.batching', 'pmap', r'config.distill.batching'),
    ('distill.real_chunk', -2, r'config.distill.real_chunk = -2 must be an'),
    ('optim.lr', -0.1, r'config.optim.lr'),
    ('optim.b1', 1.5, r'config.optim.b1'),
    ('optim.b1', 1.0, r'config.optim.b1 = 1.0 must be a number in \[0, 1\)'),
    ('optim.ema_decay', 1.0, r'config.optim.ema_decay = 1.0 must be a'),
    ('data.augment', 'mixup', r"config.data.augment = 'mixup' is not one of"),
    ('data.sampling', 'stratified', r'config.data.sampling'),
    ('data.val_size', -1, r'config.data.val_size = -1 must be an integer'),
    ('data.zca', -0.1,
     r'config.data.zca = -0.1 must be a finite number in \[0.0, inf\)'),
    ('data.zca', float('inf'), r'config.data.zca = inf must be a finite'),
    ('distill.lr_init', float('nan'), r'config.distill.lr_init = nan must be'),
    ('optim.decay_factor', 2.0,
     r'config.optim.decay_factor = 2.0 must be a finite number in \(0.0, 1.0\]'),
    ('num_iterations', -1, r'config.num_iterations = -1'),
    ('real_batch_size', 0, r'config.real_batch_size'),
    ('eval.num_models', 0, r'config.eval.num_models = 0'),
])
def test_bad_field_is_named(field, value, message):
  config = mnist_config.get_config()
  with config.unlocked():
    node = config
    *parents, leaf = field.split('.')
    for p in parents:
      node = node[p]
    # Bypass ConfigDict's type check to model a value from any source.
    node._fields[leaf] = value
  with pytest.raises(ConfigError, match=message):
    config_checks.validate(config)


def test_image_size_the_model_cannot_take():
  config = mnist_config.get_config()
  config.data.name = 'usps'  # 16x16 images; LeNet takes 28 or 32.
  with pytest.raises(ConfigError, match=r"'lenet' takes images of size"):
    config_checks.validate(config)
  config.data.name = 'mnist'
  config.model.name = 'alexcifarnet'
  with pytest.raises(ConfigError, match='alexcifarnet.*28x28'):
    config_checks.validate(config)


# Every experiment's config, by the kind `config_checks.validate` checks it
# as, with the names its own package owns (the core cannot import them).
KINDS = {
    'mnist': ('distill', {}), 'cifar10': ('distill', {}),
    'table1': ('table1', {'knn_metrics': baselines.KNN_METRICS}),
    'table2': ('table2', {'rows': table2.ROWS}),
    'table3': ('table3', {}), 'figure3': ('figure3', {}),
    'pretrain': ('pretrain', {}), 'linear': ('linear', {}),
    'continual': ('continual', {'methods': continual_runner.METHODS,
                                'streams': continual_runner.STREAMS}),
}


def _shipped(name: str, variant=None):
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config(variant) if variant else module.get_config()
  if 'pools_dir' in config:
    config.pools_dir = 'POOLS'  # Set on the command line; required.
  return config


def _check(name: str, config) -> None:
  kind, names = KINDS[name]
  config_checks.validate(config, kind, **names)


CONFIGS = sorted(p.stem for p in ROOT.glob('configs/*.py')
                 if p.stem not in ('__init__', 'default'))


def test_every_config_file_has_a_kind():
  assert sorted(KINDS) == CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_every_variant_of_every_config_validates(name):
  module = importlib.import_module(f'configs.{name}')
  for variant in getattr(module, 'VARIANTS', (None,)):
    _check(name, _shipped(name, variant))


def _set(config, field, value):
  node = config
  *parents, leaf = field.split('.')
  for p in parents:
    node = node[p]
  with config.unlocked():
    node._fields[leaf] = value  # Bypass ConfigDict's type check.


# Every Adam of every experiment: beta1 = 1 divides by zero at iteration 1.
B1_FIELDS = [
    ('mnist', 'optim.b1'), ('table1', 'mnist.fixed.optim.b1'),
    ('table1', 'cifar10.random.optim.b1'), ('table2', 'run.optim.b1'),
    ('table3', 'run.optim.b1'), ('figure3', 'run.optim.b1'),
    ('pretrain', 'optim.b1'), ('continual', 'learner.distill.optim.b1'),
]


@pytest.mark.parametrize('name,field', B1_FIELDS)
def test_adam_b1_of_one_is_refused_in_every_config(name, field):
  config = _shipped(name)
  _set(config, field, 1.0)
  with pytest.raises(ConfigError, match=re.escape(
      f'config.{field} = 1.0 must be a number in [0, 1)')):
    _check(name, config)
  _set(config, field, 0.999)
  _check(name, config)


@pytest.mark.parametrize('name,field,value,message', [
    # Unknown names: the field and the allowed values.
    ('table1', 'mnist.fixed.model.name', 'vgg',
     "config.mnist.fixed.model.name = 'vgg' is not one of ['alexcifarnet'"),
    ('table2', 'run.model.name', 'vgg', "config.run.model.name = 'vgg' is "
     'not one of'),
    ('table3', 'run.model.name', 'vgg', "config.run.model.name = 'vgg'"),
    ('table1', 'datasets', 'mnist,imagenet', "config.datasets = "
     "'mnist,imagenet': unknown ['imagenet']; known: ['cifar10', 'mnist']"),
    ('table2', 'rows', 'usps_to_svhn', "config.rows = 'usps_to_svhn': unknown "
     "['usps_to_svhn']; known: ['mnist_to_usps', 'svhn_to_mnist', "
     "'usps_to_mnist']"),
    ('table3', 'rows', 'voc2012', "unknown ['voc2012']; known: ['cub200', "
     "'voc2007']"),
    ('table1', 'baselines.knn_metrics', 'l1,cosine', "unknown ['cosine']"),
    ('figure3', 'init_modes', 'fixed,pretrained',
     "config.init_modes = 'fixed,pretrained': unknown ['pretrained']"),
    ('continual', 'learner.method', 'lwf', "config.learner.method = 'lwf' is "
     "not one of ['sgd', 'ewc', 'gem', 'icarl']"),
    ('continual', 'model.name', 'vgg', "config.model.name = 'vgg'"),
    ('continual', 'stream', 'rotated_mnist', 'config.stream'),
    ('pretrain', 'data.name', 'imagenet9', "config.data.name = 'imagenet9'"),
    ('pretrain', 'new_classifier', 'zeros', 'config.new_classifier'),
    # Lists and numbers.
    ('figure3', 'gd_steps', '1,x', "config.gd_steps = '1,x' is not "
     'comma-separated int values'),
    ('figure3', 'gd_steps', '1,0', "config.gd_steps = '1,0': every value "
     'must be >= 1'),
    ('linear', 'num_distilled', '', 'config.num_distilled is empty'),
    ('linear', 'dim', 0, 'config.dim = 0 must be an integer >= 1'),
    ('table1', 'baselines.lrs', '0.1,0', 'config.baselines.lrs'),
    ('table1', 'baselines.num_selected', 60, 'num_selected = 60 exceeds'),
    ('table2', 'passes', (1, 3), "config.passes = (1, 3) must be a string"),
    ('continual', 'seeds', '0,-1', "config.seeds = '0,-1'"),
    ('continual', 'learner.distill.gd_steps', 0,
     'config.learner.distill.gd_steps = 0'),
    ('continual', 'learner.distill.real_chunk', -2,
     'config.learner.distill.real_chunk = -2'),
    ('pretrain', 'epochs', 0, 'config.epochs = 0'),
    ('table2', 'pools_dir', '', 'config.pools_dir is empty'),
    ('table3', 'full_target_batch_size', 0, 'config.full_target_batch_size'),
])
def test_bad_field_of_an_experiment_config_is_named(name, field, value,
                                                    message):
  config = _shipped(name)
  _set(config, field, value)
  with pytest.raises(ConfigError, match=re.escape(message)):
    _check(name, config)


def test_gd_steps_of_figure3_must_be_whole_passes_of_its_steps():
  config = _shipped('figure3')
  config.run.distill.steps = 2
  with pytest.raises(ConfigError, match="config.gd_steps = '1,2,5,10,20,40': "
                     '1 GD steps is not a multiple of '
                     'config.run.distill.steps = 2'):
    _check('figure3', config)
  config.gd_steps = '2,4'
  _check('figure3', config)


def test_table2_target_the_model_cannot_take_names_the_row():
  config = _shipped('table2')
  config.run.data.as_mnist = False  # USPS as it is: 16x16.
  with pytest.raises(ConfigError, match=r"row 'mnist_to_usps' \(target "
                     r"'usps'\) has 16x16 images"):
    _check('table2', config)
  config.rows = 'usps_to_mnist'  # MNIST itself: 28x28.
  _check('table2', config)


def test_imagenet_weights_need_alexnet_and_a_transfer_target():
  config = _shipped('pretrain', 'imagenet_alexnet')
  config.weights = 'alexnet.npz'
  _check('pretrain', config)
  config.data.name = 'mnist'
  with pytest.raises(ConfigError, match="config.data.name = 'mnist' is not "
                     r"one of \['cub200', 'voc2007'\]"):
    _check('pretrain', config)
  config = _shipped('pretrain')
  config.weights = 'alexnet.npz'
  with pytest.raises(ConfigError, match='config.model.name = .lenet.'):
    _check('pretrain', config)


def test_unknown_kind_is_an_error():
  with pytest.raises(ValueError, match="unknown config kind 'table5'"):
    config_checks.validate(mnist_config.get_config(), 'table5')


@pytest.mark.parametrize('runner', ['table1', 'table2', 'table3', 'figure3',
                                    'pretrain', 'continual'])
def test_runners_validate_before_anything_else(runner, tmp_path):
  """A bad config is refused before any data, pool or workdir is touched."""
  run, name, field = {
      'table1': (table1.run_table1, 'table1', 'mnist.fixed.optim.b1'),
      'table2': (table2.run_table2, 'table2', 'run.optim.b1'),
      'table3': (table3.run_table3, 'table3', 'run.optim.b1'),
      'figure3': (figure3.run_figure3, 'figure3', 'run.optim.b1'),
      'pretrain': (pretraining.run_pretrain, 'pretrain', 'optim.b1'),
      'continual': (continual_runner.run_continual, 'continual',
                    'learner.distill.optim.b1'),
  }[runner]
  config = _shipped(name)
  if 'pools_dir' in config:
    config.pools_dir = str(tmp_path / 'no_pools')
  _set(config, field, 1.0)
  workdir = tmp_path / 'out'
  with pytest.raises(ConfigError, match=re.escape(f'config.{field} = 1.0')):
    run(config, str(workdir))
  assert not workdir.exists()


def test_configs_import_no_library_code():
  """configs/*.py hold ml_collections and plain values only (__init__.py
  holds the installed package's alias, not a config)."""
  bad = []
  for path in sorted(ROOT.glob('configs/*.py')):
    if path.name == '__init__.py':
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [node.module]
      else:
        continue
      bad += [f'{path.name} imports {n}' for n in names
              if n.split('.')[0] not in ('ml_collections', 'configs')]
  assert not bad, bad

