"""Loaders parse files the tests write, and fail clearly on bad ones."""

import gzip
import os
import pickle
import tarfile

import numpy as np
from PIL import Image
import pytest

from ddistill.data import datasets
from ddistill.data import raw_formats
from ddistill.errors import DataError


def _rng():
  return np.random.default_rng(0)


def _write_mnist(folder, n_train=12, n_test=5):
  os.makedirs(folder, exist_ok=True)
  rng = _rng()
  arrays = {}
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    raw_formats.write_idx(
        os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'), images)
    raw_formats.write_idx(
        os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), labels)
    arrays[prefix] = (images, labels)
  return arrays


def test_mnist_idx_files_parse_and_normalize(tmp_path):
  arrays = _write_mnist(tmp_path / 'mnist')
  ds = datasets.load_dataset('mnist', 'local', str(tmp_path))
  images, labels = arrays['train']
  assert ds.train_images.shape == (12, 28, 28, 1)
  assert ds.train_images.dtype == np.float32
  np.testing.assert_array_equal(ds.train_labels, labels)
  np.testing.assert_allclose(ds.train_images[..., 0],
                             (images / 255 - 0.1307) / 0.3081, rtol=1e-5)
  assert ds.test_images.shape == (5, 28, 28, 1)


def test_uncompressed_idx_files_parse_too(tmp_path):
  images = _rng().integers(0, 256, (3, 4, 5), dtype=np.uint8)
  raw_formats.write_idx(str(tmp_path / 'x-idx3-ubyte'), images)
  np.testing.assert_array_equal(
      raw_formats.read_idx(str(tmp_path / 'x-idx3-ubyte')), images)


def test_truncated_idx_file_names_the_file(tmp_path):
  _write_mnist(tmp_path / 'mnist')
  path = tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz'
  with gzip.open(path) as f:
    data = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(data[:-100])
  with pytest.raises(DataError, match='train-images-idx3-ubyte.gz.*truncated'):
    datasets.load_dataset('mnist', 'local', str(tmp_path))


def test_corrupt_gzip_names_the_file(tmp_path):
  _write_mnist(tmp_path / 'mnist')
  path = tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz'
  path.write_bytes(b'this is not gzip data at all')
  with pytest.raises(DataError,
                     match='t10k-labels-idx1-ubyte.gz: cannot be read'):
    datasets.load_dataset('mnist', 'local', str(tmp_path))


def test_damaged_deflate_data_names_the_file(tmp_path):
  _write_mnist(tmp_path / 'mnist')
  path = tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz'
  blob = path.read_bytes()
  # The first deflate block header, after gzip's header and the file name
  # it holds: zlib itself fails (not gzip's CRC check).
  start = blob.index(b'\0', 10) + 1
  path.write_bytes(blob[:start] + bytes(255 - b for b in blob[start:start + 8])
                   + blob[start + 8:])
  with pytest.raises(DataError,
                     match='train-images-idx3-ubyte.gz: cannot be read'):
    datasets.load_dataset('mnist', 'local', str(tmp_path))


@pytest.mark.parametrize('data, targets, message', [
    (np.full((16, 784), 9.0), np.zeros(16), r'data of shape \(16, 784\)'),
    (np.zeros((16, 256)), np.zeros(19), r'targets of shape \(19,\)'),
    (np.full((4, 256), 255.0), np.zeros(4), r'pixels lie in \[255, 255\]'),
])
def test_a_wrong_usps_file_is_named_not_read(tmp_path, data, targets,
                                              message):
  import h5py  # pylint: disable=g-import-not-at-top
  (tmp_path / 'usps').mkdir()
  with h5py.File(tmp_path / 'usps' / 'usps.h5', 'w') as f:
    for split in ('train', 'test'):
      f.create_dataset(f'{split}/data', data=data)
      f.create_dataset(f'{split}/target', data=targets.astype(np.int32))
  with pytest.raises(DataError, match='usps.h5: train.*' + message):
    datasets.load_dataset('usps', 'local', str(tmp_path))


def test_missing_mnist_file_names_the_path(tmp_path):
  _write_mnist(tmp_path / 'mnist')
  os.remove(tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz')
  with pytest.raises(DataError, match='train-labels-idx1-ubyte.*not found'):
    datasets.load_dataset('mnist', 'local', str(tmp_path))


def _cifar_arrays(n):
  rng = _rng()
  return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.int32))


def test_cifar_python_batches(tmp_path):
  folder = tmp_path / 'cifar10' / 'cifar-10-batches-py'
  folder.mkdir(parents=True)
  images, labels = _cifar_arrays(12)
  names = [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']
  for i, name in enumerate(names):
    sl = slice(2 * i, 2 * i + 2)
    batch = {b'data': images[sl].transpose(0, 3, 1, 2).reshape(2, -1),
             b'labels': labels[sl].tolist()}
    with open(folder / name, 'wb') as f:
      pickle.dump(batch, f)
  ds = datasets.load_dataset('cifar10', 'local', str(tmp_path),
                             cache_dir=str(tmp_path / 'cache'))
  assert ds.train_images.shape == (10, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_labels, labels[:10])
  np.testing.assert_array_equal(ds.test_labels, labels[10:])
  mean, std = np.asarray(datasets.SPECS['cifar10'].mean), np.asarray(
      datasets.SPECS['cifar10'].std)
  np.testing.assert_allclose(ds.train_images[3],
                             (images[3] / 255 - mean) / std, atol=1e-5)


def _write_image_tree(root, per_class=1):
  """PNG (lossless) files in train/<class>/ and test/<class>/."""
  expected = {}
  rng = _rng()
  for split in ('train', 'test'):
    images, labels = [], []
    for label, name in enumerate(datasets.CIFAR10_CLASSES):
      os.makedirs(root / split / name, exist_ok=True)
      for i in range(per_class):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / split / name / f'{i:04d}.png')
        images.append(img)
        labels.append(label)
    expected[split] = (np.stack(images), np.asarray(labels))
  return expected


def test_cifar_image_folder_tree(tmp_path):
  expected = _write_image_tree(tmp_path / 'cifar10')
  ds = datasets.load_dataset('cifar10', 'local', str(tmp_path),
                             cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(ds.test_labels, expected['test'][1])
  pixels = np.round((ds.train_images * datasets.SPECS['cifar10'].std +
                     datasets.SPECS['cifar10'].mean) * 255)
  np.testing.assert_array_equal(pixels, expected['train'][0])


def test_cifar_tar_gz_is_decoded_once_then_cached(tmp_path):
  tree = tmp_path / 'tree'
  expected = _write_image_tree(tree)
  (tmp_path / 'data' / 'cifar10').mkdir(parents=True)
  archive = tmp_path / 'data' / 'cifar10' / 'cifar10-images.tar.gz'
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(tree / 'train', arcname='train')
    tar.add(tree / 'test', arcname='test')
  cache = tmp_path / 'cache'
  first = datasets.load_dataset('cifar10', 'local', str(tmp_path / 'data'),
                                cache_dir=str(cache))
  np.testing.assert_array_equal(first.train_labels, expected['train'][1])
  assert len(os.listdir(cache)) == 1
  # A second load reads the cache: it works even if decoding were broken.
  original = raw_formats.read_image_tar
  raw_formats.read_image_tar = None
  try:
    second = datasets.load_dataset('cifar10', 'local', str(tmp_path / 'data'),
                                   cache_dir=str(cache))
  finally:
    raw_formats.read_image_tar = original
  np.testing.assert_array_equal(first.train_images, second.train_images)


def test_truncated_tar_gz_names_the_archive(tmp_path):
  tree = tmp_path / 'tree'
  _write_image_tree(tree)
  (tmp_path / 'data' / 'cifar10').mkdir(parents=True)
  archive = tmp_path / 'data' / 'cifar10' / 'c.tar.gz'
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(tree / 'train', arcname='train')
    tar.add(tree / 'test', arcname='test')
  archive.write_bytes(archive.read_bytes()[:2000])
  with pytest.raises(DataError,
                     match='c.tar.gz: truncated or corrupt archive'):
    datasets.load_dataset('cifar10', 'local', str(tmp_path / 'data'),
                          cache_dir=str(tmp_path / 'cache'))


def test_a_damaged_entry_inside_a_tar_gz_is_not_read_as_its_end(tmp_path):
  # tarfile stops listing at a damaged header without an error; the loader
  # must not return the images before it as the whole dataset.
  tree = tmp_path / 'tree'
  _write_image_tree(tree, per_class=2)
  plain = tmp_path / 'c.tar'
  with tarfile.open(plain, 'w') as tar:
    tar.add(tree / 'train', arcname='train')
    tar.add(tree / 'test', arcname='test')
  with tarfile.open(plain) as tar:
    offset = [m for m in tar.getmembers() if m.isfile()][10].offset
  blob = bytearray(plain.read_bytes())
  blob[offset + 100:offset + 108] = b'garbage!'  # Its mode: a bad checksum.
  (tmp_path / 'data' / 'cifar10').mkdir(parents=True)
  with gzip.open(tmp_path / 'data' / 'cifar10' / 'c.tar.gz', 'wb') as f:
    f.write(bytes(blob))
  with pytest.raises(DataError, match='c.tar.gz: corrupt archive'):
    datasets.load_dataset('cifar10', 'local', str(tmp_path / 'data'),
                          cache_dir=str(tmp_path / 'cache'))


def test_unknown_dataset_and_source_are_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset 'imagenet9'"):
    datasets.load_dataset('imagenet9', 'local', str(tmp_path))
  with pytest.raises(ValueError, match='unknown data source'):
    datasets.load_dataset('mnist', 'ftp', str(tmp_path))


def test_missing_dataset_folder_is_an_error(tmp_path):
  with pytest.raises(DataError, match='mnist.*folder not found'):
    datasets.load_dataset('mnist', 'local', str(tmp_path))


def test_local_source_without_a_folder_says_how_to_set_one(monkeypatch):
  monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
  with pytest.raises(DataError, match=datasets.DATA_DIR_ENV):
    datasets.load_dataset('mnist', 'local')


def test_tfds_path_under_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=7):
    ds = datasets.load_dataset('mnist', 'tfds')
  assert ds.train_images.shape == (7, 28, 28, 1)
  assert ds.train_images.dtype == np.float32
  assert ds.train_labels.dtype == np.int32
  assert 0 <= ds.train_labels.min() and ds.train_labels.max() < 10


def test_tfds_failure_says_how_to_use_local_files(tmp_path):
  # An empty tfds data dir with downloads impossible: tfds cannot load.
  with pytest.raises(DataError, match=datasets.DATA_DIR_ENV):
    datasets.load_dataset('mnist', 'tfds',
                          tfds_data_dir=str(tmp_path / 'no_tfds_here'))


def test_the_offline_mnist_copy_loads(mnist):
  assert mnist.train_images.shape == (60000, 28, 28, 1)
  assert mnist.test_images.shape == (10000, 28, 28, 1)
  assert np.bincount(mnist.test_labels).tolist()[:2] == [980, 1135]
  assert abs(float(mnist.train_images.mean())) < 0.01


def test_zca_whitens_train_and_maps_test_the_same_way():
  # Correlated 2x2x3 "images": whitening should leave an identity covariance.
  rng = _rng()
  mix_DxD = rng.normal(size=(12, 12))
  train = (rng.normal(size=(4000, 12)) @ mix_DxD + 3.0).reshape(-1, 2, 2, 3)
  data = datasets.Dataset('toy', train.astype(np.float32),
                          np.zeros(4000, np.int32), train[:7].astype(np.float32),
                          np.zeros(7, np.int32), np.zeros(3), np.ones(3), 2)
  white = datasets.zca_whiten(data, eps=1e-6)
  flat_NxD = white.train_images.reshape(4000, -1).astype(np.float64)
  np.testing.assert_allclose(flat_NxD.mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(np.cov(flat_NxD.T, bias=True), np.eye(12),
                             atol=1e-3)
  # The test split goes through the training set's map, not its own.
  np.testing.assert_allclose(white.test_images, white.train_images[:7],
                             atol=1e-5)
  assert white.name == 'toy_zca' and white.train_images.shape == train.shape
  # eps shrinks each direction's variance to lambda / (lambda + eps).
  lam_D = np.linalg.eigvalsh(np.cov(train.reshape(4000, -1).T, bias=True))
  shrunk = datasets.zca_whiten(data, eps=float(np.median(lam_D)))
  got_D = np.linalg.eigvalsh(np.cov(
      shrunk.train_images.reshape(4000, -1).astype(np.float64).T, bias=True))
  np.testing.assert_allclose(got_D, lam_D / (lam_D + np.median(lam_D)),
                             rtol=1e-3)
  with pytest.raises(ValueError, match='ZCA eps'):
    datasets.zca_whiten(data, eps=0.0)


def test_hold_out_splits_off_disjoint_validation_images():
  import jax
  n = 50
  images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
  data = datasets.Dataset('toy', images, np.arange(n, dtype=np.int32) % 10,
                          images[:3], np.zeros(3, np.int32), np.zeros(1),
                          np.ones(1), 10)
  rest, (val_x, val_y) = datasets.hold_out(data, 12, jax.random.key(1))
  ids_rest, ids_val = rest.train_images.ravel(), val_x.ravel()
  assert len(ids_rest) == 38 and len(ids_val) == 12
  assert sorted(np.concatenate([ids_rest, ids_val])) == list(range(n))
  np.testing.assert_array_equal(val_y, ids_val.astype(np.int32) % 10)
  again, _ = datasets.hold_out(data, 12, jax.random.key(1))
  np.testing.assert_array_equal(again.train_images, rest.train_images)
  other, _ = datasets.hold_out(data, 12, jax.random.key(2))
  assert not np.array_equal(other.train_images, rest.train_images)
  with pytest.raises(DataError, match='validation split of 50 images'):
    datasets.hold_out(data, 50, jax.random.key(1))


def test_zca_refuses_images_too_large_for_a_covariance():
  big = np.zeros((2, 65, 65, 3), np.float32)
  data = datasets.Dataset('big', big, np.zeros(2, np.int32), big,
                          np.zeros(2, np.int32), np.zeros(3), np.ones(3), 2)
  with pytest.raises(DataError, match='at most 12288 values'):
    datasets.zca_whiten(data, eps=0.1)
