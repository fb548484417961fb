"""Bad configs are refused before any compute, naming the field."""

import pytest

from configs import cifar10 as cifar10_config
from configs import mnist as mnist_config
from ddistill import config_checks
from ddistill.errors import ConfigError


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


def test_unknown_variant_is_an_error():
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    mnist_config.get_config('fast')


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
    ('optim.lr', -0.1, r'config.optim.lr'),
    ('optim.b1', 1.5, r'config.optim.b1'),
    ('optim.b1', 1.0, r'config.optim.b1 = 1.0 must be a number in \[0, 1\)'),
    ('data.augment', 'mixup', r"config.data.augment = 'mixup' is not one of"),
    ('data.sampling', 'stratified', r'config.data.sampling'),
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
