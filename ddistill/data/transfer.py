"""PASCAL-VOC 2007 and CUB-200-2011 as classification sets (Table 3).

Both come through `tfds` only (`voc/2007`, `caltech_birds2011`). VOC is a
detection set: as the paper's code does, every object's bounding box is
cropped out and becomes one example labelled with its class (trainval for
training, test for testing). CUB images are used whole. As in the official
loaders, images are resized (bicubic) to `image_size` squares and normalized
with ImageNet's mean and std (VOC) or CUB's own (CUB).

Memory: at 224 px one image is 0.6 MB as float32, so VOC's 15,662 trainval
crops take 9.4 GB (and its test crops as much); pick a smaller image_size
on small hosts.
"""

import dataclasses

import numpy as np
from PIL import Image

from ddistill.data import datasets
from ddistill.errors import DataError

# The input the torchvision ImageNet AlexNet expects.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CUB-200's training images' channel statistics, as the official code has
# them.
CUB_MEAN = (0.47850531339645386, 0.4992702007293701, 0.4022205173969269)
CUB_STD = (0.23210887610912323, 0.2277066558599472, 0.26652416586875916)


@dataclasses.dataclass(frozen=True)
class TransferSpec:
  tfds_name: str
  num_classes: int
  train_splits: tuple[str, ...]
  test_splits: tuple[str, ...]
  crop_objects: bool  # One example per bounding box (VOC) or per image.
  mean: tuple[float, float, float]  # Channel statistics to normalize with.
  std: tuple[float, float, float]


SPECS = {
    'voc2007': TransferSpec('voc/2007', 20, ('train', 'validation'),
                            ('test',), crop_objects=True,
                            mean=IMAGENET_MEAN, std=IMAGENET_STD),
    'cub200': TransferSpec('caltech_birds2011', 200, ('train',), ('test',),
                           crop_objects=False, mean=CUB_MEAN, std=CUB_STD),
}


def _resize(image_HxWxC: np.ndarray, size: int) -> np.ndarray:
  return np.asarray(Image.fromarray(image_HxWxC).convert('RGB').resize(
      (size, size), Image.BICUBIC))


def _crop(image_HxWxC: np.ndarray, bbox: np.ndarray) -> np.ndarray:
  """The box (tfds order: ymin, xmin, ymax, xmax in [0, 1]), at least 1 px."""
  h, w = image_HxWxC.shape[:2]
  y0, y1 = sorted((float(bbox[0]), float(bbox[2])))
  x0, x1 = sorted((float(bbox[1]), float(bbox[3])))
  top, left = min(int(y0 * h), h - 1), min(int(x0 * w), w - 1)
  bottom = max(int(np.ceil(y1 * h)), top + 1)
  right = max(int(np.ceil(x1 * w)), left + 1)
  return image_HxWxC[top:bottom, left:right]


def _examples(spec: TransferSpec, record: dict, size: int):
  image = np.asarray(record['image'])
  if not spec.crop_objects:
    yield _resize(image, size), int(record['label'])
    return
  objects = record['objects']
  for bbox, label in zip(np.asarray(objects['bbox']),
                         np.asarray(objects['label'])):
    yield _resize(_crop(image, bbox), size), int(label)


def _read_splits(spec: TransferSpec, splits, size: int, tfds_data_dir: str):
  import tensorflow_datasets as tfds  # Heavy; only this path needs it.
  images, labels = [], []
  for split in splits:
    try:
      source = tfds.data_source(spec.tfds_name, split=split,
                                data_dir=tfds_data_dir or None)
    except Exception as e:
      raise DataError(
          f'tfds could not load {spec.tfds_name!r} split {split!r} '
          f'({type(e).__name__}: {e}); prepare it with `tfds build '
          f'{spec.tfds_name}` (VOC and CUB have no local-file loader) and '
          'set config.data.tfds_data_dir') from None
    for i in range(len(source)):
      for image, label in _examples(spec, source[i], size):
        images.append(image)
        labels.append(label)
  if not images:
    raise DataError(f'tfds {spec.tfds_name!r} {splits}: no examples')
  return np.stack(images), np.asarray(labels, np.int32)


def load(name: str, image_size: int = 224,
         tfds_data_dir: str = '') -> datasets.Dataset:
  """VOC 2007 object crops or CUB-200 images, normalized as `SPECS` says."""
  if name not in SPECS:
    raise ValueError(f'unknown transfer dataset {name!r}; known: '
                     f'{sorted(SPECS)}')
  spec = SPECS[name]
  mean = np.asarray(spec.mean, np.float32)
  std = np.asarray(spec.std, np.float32)
  (train_x, train_y), (test_x, test_y) = (
      _read_splits(spec, splits, image_size, tfds_data_dir)
      for splits in (spec.train_splits, spec.test_splits))
  for split, y in (('train', train_y), ('test', test_y)):
    if y.min() < 0 or y.max() >= spec.num_classes:
      raise DataError(f'{name} {split}: labels outside [0, '
                      f'{spec.num_classes})')
  normalize = lambda x: ((x / 255.0 - mean) / std).astype(np.float32)
  return datasets.Dataset(name, normalize(train_x), train_y,
                          normalize(test_x), test_y, mean, std,
                          spec.num_classes)
