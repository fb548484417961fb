"""AlexNet, its ImageNet weights, VOC/CUB through tfds, and Table 3."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pretrain as pretrain_config
from configs import table3 as table3_config
from ddistill import distill
from ddistill import export
from ddistill import models
from ddistill import pretrained
from ddistill import train
from ddistill.models import alexnet
from ddistill import config_checks
from ddistill.paper import pretraining
from ddistill.paper import table3
from ddistill.data import transfer
from ddistill.errors import DataError
from ddistill import errors


# AdaptiveAvgPool2d(6)'s bins [start, end) along one axis of a map of each
# size, worked out by hand from torch's definition start = floor(i * H / 6),
# end = ceil((i + 1) * H / 6): for H = 5, bin 1 is [floor(5/6), ceil(10/6)) =
# [0, 2). Bins overlap when H is not a multiple of 6.
TORCH_BINS_TO_6 = {
    1: ((0, 1),) * 6,
    5: ((0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)),
    6: ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)),
    7: ((0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)),
    13: ((0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (10, 13)),
}


@pytest.mark.parametrize('size', sorted(TORCH_BINS_TO_6))
def test_adaptive_pool_averages_torchs_bins(size):
  x = np.random.default_rng(size).standard_normal((2, size, size, 3))
  want = np.empty((2, 6, 6, 3))
  for i, (top, bottom) in enumerate(TORCH_BINS_TO_6[size]):
    for j, (left, right) in enumerate(TORCH_BINS_TO_6[size]):
      want[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
  got = alexnet.adaptive_avg_pool(jnp.asarray(x, jnp.float32), 6)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _random_state(rng: np.random.Generator, num_classes: int = 1000) -> dict:
  return {name: (0.05 * rng.standard_normal(shape)).astype(np.float32)
          for name, shape in alexnet._expected_shapes(num_classes).items()}


def _torch_semantics_forward(state: dict, x_BxCxHxW: np.ndarray) -> jax.Array:
  """AlexNet as torch computes it: NCHW, [O, I, kh, kw] kernels, and
  AdaptiveAvgPool2d as averaging matrices, flattened in (c, h, w) order."""
  x = jnp.asarray(x_BxCxHxW)
  for i, (_, prefix, _, stride, pad, _) in enumerate(alexnet.CONVS):
    x = jax.lax.conv_general_dilated(
        x, state[f'{prefix}.weight'], (stride, stride), [(pad, pad)] * 2,
        dimension_numbers=('NCHW', 'OIHW', 'NCHW'),
        precision=jax.lax.Precision.HIGHEST)
    x = jax.nn.relu(x + state[f'{prefix}.bias'][None, :, None, None])
    if i in (0, 1, 4):
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 3, 3),
                                (1, 1, 2, 2), 'VALID')
  avg = np.zeros((6, x.shape[-1]), np.float32)
  for i, (lo, hi) in enumerate(TORCH_BINS_TO_6[x.shape[-1]]):
    avg[i, lo:hi] = 1.0 / (hi - lo)
  x = jnp.einsum('ih,bchw,jw->bcij', avg, x, avg).reshape(x.shape[0], -1)
  for _, prefix, _ in alexnet.DENSES:
    x = x @ state[f'{prefix}.weight'].T + state[f'{prefix}.bias']
    if prefix != alexnet.DENSES[-1][1]:
      x = jax.nn.relu(x)
  return x


@pytest.mark.parametrize('size', [191, 224])
def test_converted_weights_compute_what_torch_layout_computes(size):
  # 191 px leaves a 5x5 map, so the adaptive pool's bins overlap.
  rng = np.random.default_rng(0)
  state = _random_state(rng)
  x_BxHxWxC = rng.standard_normal((2, size, size, 3)).astype(np.float32)
  params = alexnet.params_from_torchvision(state, 1000, jax.random.key(0))
  model = alexnet.AlexNet(num_classes=1000)
  with jax.default_matmul_precision('highest'):
    ours = model.apply({'params': params}, x_BxHxWxC)
    want = _torch_semantics_forward(state, x_BxHxWxC.transpose(0, 3, 1, 2))
  # float32 sums over ~9,000 terms: tolerance relative to the logits' scale;
  # a wrong layout or flattening order is off by the scale itself.
  scale = float(jnp.abs(want).max())
  np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5 * scale)


def test_new_classifier_for_other_classes_keeps_the_backbone():
  state = _random_state(np.random.default_rng(1))
  a = alexnet.params_from_torchvision(state, 20, jax.random.key(0),
                                      new_classifier='random')
  b = alexnet.params_from_torchvision(state, 20, jax.random.key(1),
                                      new_classifier='random')
  assert a['fc8']['kernel'].shape == (4096, 20)
  assert not np.allclose(a['fc8']['kernel'], b['fc8']['kernel'])
  np.testing.assert_array_equal(a['fc7']['kernel'],
                                state['classifier.4.weight'].T)
  assert np.all(a['fc8']['bias'] == 0)
  # The official code's new classifier: zero weights, bias 1, whatever key.
  c = alexnet.params_from_torchvision(state, 20, jax.random.key(2))
  assert c['fc8']['kernel'].shape == (4096, 20)
  assert np.all(c['fc8']['kernel'] == 0) and np.all(c['fc8']['bias'] == 1)
  with pytest.raises(ValueError, match="unknown new_classifier 'ones'"):
    alexnet.params_from_torchvision(state, 20, jax.random.key(0),
                                    new_classifier='ones')


def test_weight_file_errors_name_the_problem(tmp_path):
  with pytest.raises(DataError, match='file not found'):
    alexnet.read_torchvision_npz(str(tmp_path / 'none.npz'))
  corrupt = tmp_path / 'corrupt.npz'
  corrupt.write_bytes(b'PK\x03\x04 not really a zip')
  with pytest.raises(DataError, match='not a readable'):
    alexnet.read_torchvision_npz(str(corrupt))
  state = _random_state(np.random.default_rng(2))
  missing = dict(state)
  del missing['features.3.bias']
  np.savez(tmp_path / 'missing.npz', **missing)
  with pytest.raises(DataError, match='features.3.bias'):
    alexnet.read_torchvision_npz(str(tmp_path / 'missing.npz'))
  wrong = dict(state)
  wrong['features.0.weight'] = np.zeros((64, 3, 5, 5), np.float32)
  np.savez(tmp_path / 'wrong.npz', **wrong)
  with pytest.raises(DataError, match=r'features.0.weight has shape'):
    alexnet.read_torchvision_npz(str(tmp_path / 'wrong.npz'))


def test_bad_alexnet_configs_are_refused():
  config = table3_config.get_config('quick').run
  config.distill.pretrained_dir = '/pools/voc2007'
  config_checks.validate(config)  # The quick run's own config is fine.
  config.data.image_size = 32
  with pytest.raises(errors.ConfigError, match='at least 63'):
    config_checks.validate(config)
  config.data.image_size = 64
  config.data.source = 'local'
  with pytest.raises(errors.ConfigError, match='tfds only'):
    config_checks.validate(config)


def test_voc_crops_and_cub_images_under_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=3):
    voc = transfer.load('voc2007', image_size=64)
    cub = transfer.load('cub200', image_size=70)
  # Every VOC object is an example: more crops than the 2 x 3 images.
  assert voc.train_images.shape[1:] == (64, 64, 3)
  assert len(voc.train_images) > 6
  assert 0 <= voc.train_labels.min() and voc.train_labels.max() < 20
  assert cub.train_images.shape == (3, 70, 70, 3)
  assert cub.num_classes == 200 and np.all(np.isfinite(cub.test_images))
  # Normalized as the official loaders: ImageNet's statistics for VOC,
  # CUB's own for CUB.
  np.testing.assert_allclose(voc.std, [0.229, 0.224, 0.225])
  np.testing.assert_allclose(cub.mean, [0.4785, 0.4993, 0.4022], atol=1e-4)


@pytest.fixture
def small_alexnet(monkeypatch):
  """AlexNet's layout with narrow layers: the same code, a fast test."""
  monkeypatch.setattr(alexnet, 'CONVS', tuple(
      c[:5] + (8,) for c in alexnet.CONVS))
  monkeypatch.setattr(alexnet, 'DENSES', (
      ('fc6', 'classifier.1', 16), ('fc7', 'classifier.4', 16),
      ('fc8', 'classifier.6', None)))


def test_table3_end_to_end_with_mock_data_and_random_weights(tmp_path,
                                                             small_alexnet):
  import tensorflow_datasets as tfds
  weights = tmp_path / 'alexnet.npz'
  np.savez(weights, **_random_state(np.random.default_rng(3)))
  pools = tmp_path / 'pools'
  pool_config = pretrain_config.get_config('imagenet_alexnet')
  pool_config.weights = str(weights)
  pool_config.data.image_size = 64
  config = table3_config.get_config('quick')
  config.pools_dir = str(pools)
  with tfds.testing.mock_data(num_examples=4):
    pretraining.run_pretrain(pool_config, str(pools / 'voc2007'))
    results = table3.run_table3(config, str(tmp_path / 'table3'))
    # Ours, computed directly: the pool's first training net trained on the
    # saved set with the saved lrs, then tested on VOC's test crops.
    run = config.run
    run.data.name = 'voc2007'
    data = train.load_data(run)
  model, _ = train.build_model(run, data.num_classes, data.image_shape)
  net = jax.tree.map(lambda a: a[0], pretrained.load_pool(
      str(pools / 'voc2007'), model, data.image_shape)['train'])
  d = export.load_distilled(
      str(tmp_path / 'table3' / 'voc2007' / 'ours' / 'distilled.npz'))
  trained = distill.train_on_distilled(models.Apply(model), net, d.images,
                                       d.labels, d.lrs)
  logits = model.apply({'params': trained}, data.test_images)
  direct = np.mean(np.argmax(logits, -1) == data.test_labels)
  row = results['voc2007']
  assert row['ours']['n_models'] == 1
  assert row['ours']['mean'] == pytest.approx(direct, abs=1e-6)
  assert 'kmeans' not in row
  table = (tmp_path / 'table3' / 'table3.md').read_text()
  assert 'PASCAL-VOC' in table and 'not run' in table  # CUB row not run.
  # Each column's result is in its own cell of the table's row.
  ours_line = next(line for line in table.splitlines()
                   if line.startswith('| PASCAL-VOC') and '| ours |' in line)
  cells = [c.strip() for c in ours_line.strip(' |').split('|')][2:]
  columns = ('ours', 'random_real', 'optimized_real', 'average_real',
             'full_target')
  assert len(cells) == len(columns), ours_line
  for column, cell in zip(columns, cells):
    assert cell.startswith(f"{100 * row[column]['mean']:.1f} "), (column, cell)
  with open(tmp_path / 'table3' / 'voc2007' / 'ours' / 'results.json') as f:
    assert json.load(f)['init_mode'] == 'fixed_pretrained'
