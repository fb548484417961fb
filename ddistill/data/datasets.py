"""Image classification datasets as normalized NHWC float arrays.

Two sources: local raw files (what people download by hand, laid out as
`<data_dir>/mnist/`, `<data_dir>/cifar10/`, ...) and `tfds`. The local
directory comes from the config or the `DDISTILL_DATA_DIR` environment
variable; with neither, `tfds` is used, which needs a network or a prepared
`tfds` data dir.
"""

import dataclasses
import glob
import hashlib
import os
from typing import Callable, Optional

import numpy as np

from ddistill import atomic_files
from ddistill.data import raw_formats
from ddistill.errors import DataError

DATA_DIR_ENV = 'DDISTILL_DATA_DIR'
CACHE_DIR_ENV = 'DDISTILL_CACHE_DIR'
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')
CLASS_NAMES = {'cifar10': CIFAR10_CLASSES}
MAX_ZCA_DIM = 64 * 64 * 3  # Its float64 covariance: 1.2 GB.


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test splits, normalized with the dataset's channel mean/std."""
  name: str
  train_images: np.ndarray  # [N, H, W, C] float32, normalized.
  train_labels: np.ndarray  # [N] int32.
  test_images: np.ndarray
  test_labels: np.ndarray
  mean: np.ndarray  # [C], in [0, 1] pixel units.
  std: np.ndarray  # [C].
  num_classes: int
  class_names: tuple[str, ...] = ()  # Where they are words (CIFAR-10).

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])


RawSplits = dict  # {'train': (images, labels), 'test': (images, labels)}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  tfds_name: str
  image_shape: tuple[int, int, int]  # HWC.
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  # Reads `<data_dir>/<name>/`; None where only tfds can load it.
  read_local: Optional[Callable[[str], RawSplits]] = None
  local_is_slow: bool = False  # Cache the decoded arrays.
  # Side of the box the digits fill in MNIST's 28x28 format (as_mnist_digits).
  mnist_box: int = 28


def _read_mnist(folder: str) -> RawSplits:
  def path(stem):
    for candidate in (stem + '.gz', stem):
      if os.path.exists(os.path.join(folder, candidate)):
        return os.path.join(folder, candidate)
    raise DataError(f'{os.path.join(folder, stem)}[.gz]: file not found')

  return {
      split: raw_formats.read_idx_pair(
          path(f'{prefix}-images-idx3-ubyte'),
          path(f'{prefix}-labels-idx1-ubyte'))
      for split, prefix in (('train', 'train'), ('test', 't10k'))
  }


def _read_cifar10(folder: str) -> RawSplits:
  """Python batches, an image-folder tree, or that tree as a `.tar.gz`."""
  for batches in (os.path.join(folder, 'cifar-10-batches-py'), folder):
    if os.path.exists(os.path.join(batches, 'data_batch_1')):
      train = [os.path.join(batches, f'data_batch_{i}') for i in range(1, 6)]
      return {
          'train': raw_formats.read_cifar_batches(train),
          'test': raw_formats.read_cifar_batches(
              [os.path.join(batches, 'test_batch')]),
      }
  if os.path.isdir(os.path.join(folder, 'train')):
    return {
        split: raw_formats.read_image_folder(folder, split, CIFAR10_CLASSES)
        for split in ('train', 'test')
    }
  archives = sorted(glob.glob(os.path.join(folder, '*.tar.gz')) +
                    glob.glob(os.path.join(folder, '*.tgz')))
  if archives:
    return raw_formats.read_image_tar(archives[0], CIFAR10_CLASSES)
  raise DataError(
      f'{folder}: no CIFAR-10 found (expected cifar-10-batches-py/, '
      'data_batch_* files, train/<class>/ and test/<class>/ folders, or a '
      '.tar.gz of those folders)')


def _read_usps(folder: str) -> RawSplits:
  import h5py  # Only USPS needs it.
  path = os.path.join(folder, 'usps.h5')
  if not os.path.exists(path):
    raise DataError(f'{path}: file not found')
  try:
    with h5py.File(path, 'r') as f:
      splits = {split: (np.asarray(f[split]['data'], np.float32),
                        np.asarray(f[split]['target'], np.int32))
                for split in ('train', 'test')}
  except (OSError, KeyError) as e:
    raise DataError(f'{path}: not a USPS HDF5 file ({e})') from None
  for split, (x, y) in splits.items():
    if x.ndim != 2 or x.shape[1] != 16 * 16 or y.shape != x.shape[:1]:
      raise DataError(f'{path}: {split} has data of shape {x.shape} and '
                      f'targets of shape {y.shape}; USPS has [N, 256] and '
                      '[N]')
    if x.size and not (x.min() >= 0 and x.max() <= 1):
      raise DataError(f'{path}: {split} pixels lie in [{x.min():g}, '
                      f'{x.max():g}]; USPS has them in [0, 1]')
  return {split: (x.reshape(-1, 16, 16, 1), y)
          for split, (x, y) in splits.items()}


SPECS = {
    'mnist': DatasetSpec('mnist', (28, 28, 1), 10, (0.1307,), (0.3081,), _read_mnist),
    'cifar10': DatasetSpec('cifar10', (32, 32, 3), 10, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), _read_cifar10,
                           local_is_slow=True),
    # USPS digits fill their 16x16 frame; MNIST's fill a 20x20 box centred in
    # 28x28. Framed alike, MNIST nets read USPS far better
    # (docs/paper_results.md).
    'usps': DatasetSpec('usps', (16, 16, 1), 10, (0.2469,), (0.2989,), _read_usps,
                        mnist_box=20),
    'svhn': DatasetSpec('svhn_cropped', (32, 32, 3), 10, (0.4377, 0.4438, 0.4728),
                        (0.1980, 0.2010, 0.1970)),
    'cifar100': DatasetSpec('cifar100', (32, 32, 3), 100, (0.5071, 0.4865, 0.4409),
                            (0.2673, 0.2564, 0.2762)),
}


def resolve_data_dir(configured: str = '') -> Optional[str]:
  """The local data directory: the config's value, else $DDISTILL_DATA_DIR."""
  return configured or os.environ.get(DATA_DIR_ENV) or None


def _cache_path(cache_dir: str, name: str, folder: str) -> str:
  # Key on every file's path, size and mtime so a changed source re-decodes.
  stamp = []
  for root, _, files in sorted(os.walk(folder)):
    for fname in sorted(files):
      st = os.stat(os.path.join(root, fname))
      stamp.append(f'{root}/{fname}:{st.st_size}:{st.st_mtime_ns}')
  digest = hashlib.sha1('\n'.join(stamp).encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f'{name}-{digest}.npz')


def _read_local_cached(spec: DatasetSpec, name: str, folder: str,
                       cache_dir: str) -> RawSplits:
  if not spec.local_is_slow:
    return spec.read_local(folder)
  cache_dir = cache_dir or os.environ.get(CACHE_DIR_ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'ddistill')
  path = _cache_path(cache_dir, name, folder)
  if os.path.exists(path):
    try:
      with np.load(path) as f:
        return {s: (f[f'{s}_images'], f[f'{s}_labels']) for s in ('train',
                                                                   'test')}
    except Exception:  # A broken cache is re-made, never trusted.
      pass
  splits = spec.read_local(folder)
  os.makedirs(cache_dir, exist_ok=True)
  with atomic_files.replacing(path) as tmp:
    np.savez(tmp, **{f'{s}_{k}': v for s, (images, labels) in splits.items()
                     for k, v in (('images', images), ('labels', labels))})
  return splits


def _read_tfds(spec: DatasetSpec, tfds_data_dir: Optional[str]) -> RawSplits:
  import tensorflow_datasets as tfds  # Heavy; only this path needs it.
  splits = {}
  for split in ('train', 'test'):
    try:
      source = tfds.data_source(spec.tfds_name, split=split,
                                data_dir=tfds_data_dir or None)
      records = [source[i] for i in range(len(source))]
    except Exception as e:
      raise DataError(
          f'tfds could not load {spec.tfds_name!r} ({type(e).__name__}: {e}). '
          f'Without a network, point the environment variable {DATA_DIR_ENV} '
          'or config.data.data_dir at a folder holding the raw files '
          '(mnist/, cifar10/, ...), and set config.data.source to "local" or '
          '"auto".') from None
    splits[split] = (np.stack([r['image'] for r in records]),
                     np.asarray([r['label'] for r in records], np.int32))
  return splits


def _normalize(images: np.ndarray, mean: np.ndarray,
               std: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype == np.uint8:
    # A 256-entry table per channel: the same float32 values as the float64
    # arithmetic below, without its full-size temporaries (a dataset load
    # runs in every test and subprocess).
    table_256xC = ((np.arange(256)[:, None] / 255.0 - mean) / std).astype(
        np.float32)
    return table_256xC[images, np.arange(images.shape[-1])]
  return ((images - mean) / std).astype(np.float32)


def load_dataset(name: str,
                 source: str = 'auto',
                 data_dir: str = '',
                 cache_dir: str = '',
                 tfds_data_dir: str = '') -> Dataset:
  """Loads `name` ('mnist', 'cifar10', ...) from local files or tfds.

  Args:
    name: a key of SPECS.
    source: 'local', 'tfds', or 'auto' (local when a data dir is set).
    data_dir: the local data folder; '' means $DDISTILL_DATA_DIR.
    cache_dir: where decoded slow formats are cached; '' means
      $DDISTILL_CACHE_DIR or ~/.cache/ddistill.
    tfds_data_dir: passed to tfds as its data_dir.
  """
  if name not in SPECS:
    raise ValueError(f'unknown dataset {name!r}; known: {sorted(SPECS)}')
  if source not in ('auto', 'local', 'tfds'):
    raise ValueError(
        f'unknown data source {source!r}; use "auto", "local" or "tfds"')
  spec = SPECS[name]
  folder_root = resolve_data_dir(data_dir)
  use_local = source == 'local' or (source == 'auto' and folder_root and
                                    spec.read_local is not None)
  if use_local:
    if not folder_root:
      raise DataError(f'data source "local" needs a data folder: set '
                      f'config.data.data_dir or ${DATA_DIR_ENV}')
    if spec.read_local is None:
      raise DataError(f'{name} has no local format; load it with tfds')
    folder = os.path.join(folder_root, name)
    if not os.path.isdir(folder):
      raise DataError(f'{folder}: folder not found (the data folder should '
                      f'hold {name}/)')
    raw = _read_local_cached(spec, name, folder, cache_dir)
  else:
    raw = _read_tfds(spec, tfds_data_dir)

  for split, (images, _) in raw.items():
    if tuple(images.shape[1:]) != spec.image_shape:
      raise DataError(f'{name} {split}: images of shape {images.shape[1:]}, '
                      f'expected {spec.image_shape}')
  mean = np.asarray(spec.mean, np.float32)
  std = np.asarray(spec.std, np.float32)
  (train_x, train_y), (test_x, test_y) = raw['train'], raw['test']
  for split, labels in (('train', train_y), ('test', test_y)):
    if labels.min() < 0 or labels.max() >= spec.num_classes:
      raise DataError(f'{name} {split}: labels outside [0, '
                      f'{spec.num_classes}): min {labels.min()}, '
                      f'max {labels.max()}')
  return Dataset(name, _normalize(train_x, mean, std),
                 train_y.astype(np.int32), _normalize(test_x, mean, std),
                 test_y.astype(np.int32), mean, std, spec.num_classes,
                 CLASS_NAMES.get(name, ()))


def as_mnist_digits(data: Dataset, box: int = 0) -> Dataset:
  """Digits of any source (USPS, SVHN, ...) in MNIST's format.

  Pixels back in [0, 1], RGB to luminance, resized to a `box` x `box` square
  (bilinear with antialiasing) centred on a 28x28 black frame, and normalized
  with MNIST's mean and std, so that networks trained on one digit dataset
  take another (domain adaptation). `box` 0 takes the dataset's own
  (`DatasetSpec.mnist_box`: 20 for USPS, as MNIST's digits; 28, the whole
  frame, for SVHN crops, as the paper's code).
  """
  import jax  # pylint: disable=g-import-not-at-top
  mnist = SPECS['mnist']
  spec = SPECS.get(data.name)
  box = box or (spec.mnist_box if spec else 28)
  if not 1 <= box <= 28:
    raise ValueError(f'digit box {box} does not fit in 28x28 (1 to 28)')
  lo = (28 - box) // 2
  luma = np.asarray([0.299, 0.587, 0.114], np.float32)

  def convert(images):
    unit = np.asarray(images) * data.std + data.mean
    if unit.shape[-1] == 3:
      unit = (unit @ luma)[..., None]
    out = [np.asarray(jax.image.resize(chunk, (len(chunk), box, box, 1),
                                       'bilinear', antialias=True))
           for chunk in (unit[i:i + 4096] for i in range(0, len(unit), 4096))]
    framed = np.zeros((len(unit), 28, 28, 1), np.float32)
    framed[:, lo:lo + box, lo:lo + box] = np.clip(np.concatenate(out), 0, 1)
    return ((framed - mnist.mean[0]) / mnist.std[0]).astype(np.float32)

  return dataclasses.replace(
      data, name=f'{data.name}_as_mnist',
      train_images=convert(data.train_images),
      test_images=convert(data.test_images),
      mean=np.asarray(mnist.mean, np.float32),
      std=np.asarray(mnist.std, np.float32))


def zca_whiten(data: Dataset, eps: float) -> Dataset:
  """ZCA whitening fit on the training images, as KIP, MTT and RaT-BPTT
  preprocess CIFAR (see `zca_transform`); the test images are mapped the
  same way. Images stay in that space: distilled images, PNGs and exports
  show it."""
  return whitened(data, zca_transform(data, eps))


def zca_transform(data: Dataset,
                  eps: float) -> Callable[[np.ndarray], np.ndarray]:
  """x -> (x - mu) U diag(1 / sqrt(lambda + eps)) U^T on flattened images,
  where U, lambda are the eigenvectors and eigenvalues of the covariance of
  data's training images; eps keeps the near-zero directions from being
  blown up."""
  if not eps > 0:
    raise ValueError(f'ZCA eps must be > 0, got {eps}')
  shape = data.image_shape
  if np.prod(shape) > MAX_ZCA_DIM:
    raise DataError(f'ZCA of {data.name}\'s {shape} images needs a '
                    f'{np.prod(shape)}-square covariance; config.data.zca '
                    f'takes images of at most {MAX_ZCA_DIM} values')
  x_NxD = data.train_images.reshape(len(data.train_images), -1)
  mu_D = x_NxD.mean(0, dtype=np.float64)
  cov_DxD = np.zeros((x_NxD.shape[1],) * 2)
  for start in range(0, len(x_NxD), 4096):  # float64 pieces, not a copy.
    centred = x_NxD[start:start + 4096] - mu_D
    cov_DxD += centred.T @ centred
  lam_D, u_DxD = np.linalg.eigh(cov_DxD / len(x_NxD))
  w_DxD = (u_DxD / np.sqrt(np.maximum(lam_D, 0) + eps)) @ u_DxD.T

  def whiten(images):
    flat = images.reshape(len(images), -1)
    out = [((flat[i:i + 4096] - mu_D) @ w_DxD).astype(np.float32)
           for i in range(0, len(flat), 4096)]
    return np.concatenate(out).reshape((len(images),) + shape)

  return whiten


def whitened(data: Dataset,
             whiten: Callable[[np.ndarray], np.ndarray]) -> Dataset:
  """`data` with `whiten` (from `zca_transform`) applied to both splits."""
  return dataclasses.replace(data, name=f'{data.name}_zca',
                             train_images=whiten(data.train_images),
                             test_images=whiten(data.test_images))


def hold_out(data: Dataset, size: int,
             key) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
  """(data without `size` training images drawn at random with `key`, those
  images and labels): a validation split that training never sees."""
  import jax  # pylint: disable=g-import-not-at-top
  if not 0 < size < len(data.train_labels):
    raise DataError(f'a validation split of {size} images (config.data.'
                    f'val_size) does not fit in {data.name}\'s '
                    f'{len(data.train_labels)} training images')
  order = np.asarray(jax.random.permutation(key, len(data.train_labels)))
  keep, val = np.sort(order[size:]), np.sort(order[:size])
  return (dataclasses.replace(data, train_images=data.train_images[keep],
                              train_labels=data.train_labels[keep]),
          (data.train_images[val], data.train_labels[val]))
