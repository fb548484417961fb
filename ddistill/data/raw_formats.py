"""Parsers for the raw files people download by hand.

Each parser returns uint8 images `[N, H, W, C]` and int32 labels `[N]`, and
raises `DataError` naming the file and what was wrong with it.
"""

import gzip
import io
import os
import pickle
import tarfile
from typing import Iterable
import zlib

import numpy as np
from PIL import Image

from ddistill.errors import DataError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def _open_maybe_gzip(path: str):
  # IDX files come gzipped from most mirrors and raw from some.
  if path.endswith('.gz'):
    return gzip.open(path, 'rb')
  return open(path, 'rb')


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (MNIST's format), gzipped or not, as a uint8 array."""
  try:
    with _open_maybe_gzip(path) as f:
      data = f.read()
  except FileNotFoundError:
    raise DataError(f'{path}: file not found') from None
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path}: cannot be read ({e})') from None
  if len(data) < 4:
    raise DataError(f'{path}: too short to be an IDX file ({len(data)} bytes)')
  zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
  if zero != 0 or dtype_code != 0x08:
    raise DataError(
        f'{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})')
  header = 4 + 4 * ndim
  if len(data) < header:
    raise DataError(f'{path}: truncated header')
  shape = tuple(
      int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  expected = int(np.prod(shape))
  if len(data) - header != expected:
    raise DataError(
        f'{path}: header says shape {shape} ({expected} bytes) but the file '
        f'holds {len(data) - header} bytes of data (truncated or corrupt)')
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes a uint8 array as a (gzipped if `.gz`) IDX file; used by tests."""
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim])
  header += b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())


def read_idx_pair(images_path: str, labels_path: str):
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.ndim != 3 or labels.ndim != 1:
    raise DataError(f'{images_path}: expected [N, H, W] images and [N] labels, '
                    f'got {images.shape} and {labels.shape}')
  if len(images) != len(labels):
    raise DataError(f'{images_path}: {len(images)} images but '
                    f'{labels_path} has {len(labels)} labels')
  return images[..., None], labels.astype(np.int32)


def read_cifar_batches(paths: Iterable[str]):
  """Reads CIFAR-10's python-pickle batches (`data_batch_*`, `test_batch`)."""
  images, labels = [], []
  for path in paths:
    try:
      with open(path, 'rb') as f:
        batch = pickle.load(f, encoding='bytes')
      data = np.asarray(batch[b'data'], np.uint8)
      batch_labels = np.asarray(batch[b'labels'], np.int32)
    except FileNotFoundError:
      raise DataError(f'{path}: file not found') from None
    except Exception as e:  # pickle raises many types on corrupt input.
      raise DataError(f'{path}: not a CIFAR python batch ({e!r})') from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(
        batch_labels):
      raise DataError(f'{path}: expected data [N, 3072] and N labels, got '
                      f'{data.shape} and {batch_labels.shape}')
    images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    labels.append(batch_labels)
  return np.concatenate(images), np.concatenate(labels)


def _decode_image(blob: bytes, name: str) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(blob)) as img:
      return np.asarray(img.convert('RGB'), np.uint8)
  except Exception as e:
    raise DataError(f'{name}: cannot decode image ({e})') from None


def _stack(arrays, labels, where: str):
  if not arrays:
    raise DataError(f'{where}: no images found')
  shapes = {a.shape for a in arrays}
  if len(shapes) != 1:
    raise DataError(f'{where}: images of different sizes {sorted(shapes)}')
  return np.stack(arrays), np.asarray(labels, np.int32)


def read_image_folder(root: str, split: str, class_names: tuple[str, ...]):
  """Reads `root/split/<class>/*.jpg` with labels by position in class_names."""
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    raise DataError(f'{split_dir}: folder not found')
  arrays, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(split_dir, name)
    if not os.path.isdir(class_dir):
      raise DataError(f'{class_dir}: class folder not found')
    for fname in sorted(os.listdir(class_dir)):
      if fname.lower().endswith(IMAGE_SUFFIXES):
        path = os.path.join(class_dir, fname)
        with open(path, 'rb') as f:
          arrays.append(_decode_image(f.read(), path))
        labels.append(label)
  return _stack(arrays, labels, split_dir)


def read_image_tar(path: str, class_names: tuple[str, ...]):
  """Reads an image-folder tree packed in a `.tar.gz`, both splits at once.

  Returns {split: (images, labels)}. Members may sit under a top folder.
  """
  index = {name: i for i, name in enumerate(class_names)}
  found = {'train': ([], [], []), 'test': ([], [], [])}
  try:
    with tarfile.open(path, 'r:*') as tar:
      for member in tar:
        if not member.isfile() or not member.name.lower().endswith(
            IMAGE_SUFFIXES):
          continue
        parts = member.name.split('/')
        if len(parts) < 3 or parts[-3] not in found or parts[-2] not in index:
          continue
        blob = tar.extractfile(member).read()
        names, arrays, labels = found[parts[-3]]
        names.append(member.name)
        arrays.append(_decode_image(blob, f'{path}:{member.name}'))
        labels.append(index[parts[-2]])
      # tarfile ends its listing quietly at a damaged header: anything but
      # the zero blocks that close an archive after that means damage.
      if any(block.strip(b'\0') for block in
             iter(lambda: tar.fileobj.read(1 << 20), b'')):
        raise DataError(f'{path}: corrupt archive (a damaged entry after '
                        f'byte {tar.offset}); download it again')
  except FileNotFoundError:
    raise DataError(f'{path}: file not found') from None
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise DataError(f'{path}: truncated or corrupt archive ({e})') from None
  result = {}
  for split, (names, arrays, labels) in found.items():
    # Sort by member name so the order does not depend on how tar packed it.
    order = np.argsort(names, kind='stable')
    result[split] = _stack([arrays[i] for i in order],
                           [labels[i] for i in order], f'{path}:{split}/')
  return result
