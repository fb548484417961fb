"""Datasets by name: a small registry that `train.load_data` asks.

Each entry says how to load the dataset from `config.data` and what size its
images have, so the run loop and config checks need no per-dataset cases.
The core registers MNIST-like and CIFAR-like sets (`datasets.py`, from local
files or tfds) and VOC/CUB (`transfer.py`, tfds only); research code adds
its own with `register`.
"""

import dataclasses
from typing import Callable

import ml_collections

from ddistill.data import datasets
from ddistill.data import transfer
from ddistill.data.datasets import Dataset


@dataclasses.dataclass(frozen=True)
class Source:
  load: Callable[[ml_collections.ConfigDict], Dataset]  # config.data -> set.
  # config.data -> (height, width) of the images `load` returns.
  image_size: Callable[[ml_collections.ConfigDict], tuple[int, int]]
  local: bool  # Whether it can be read from a local data folder.


SOURCES: dict[str, Source] = {}


def register(name: str, source: Source) -> None:
  """Makes `name` usable as `config.data.name`."""
  SOURCES[name] = source


def load(dc: ml_collections.ConfigDict) -> Dataset:
  """Loads `dc.name` as `dc` (a config's `data` field) asks."""
  if dc.name not in SOURCES:
    raise ValueError(f'unknown dataset {dc.name!r}; known: {sorted(SOURCES)}')
  return SOURCES[dc.name].load(dc)


def _local_or_tfds(name: str) -> Source:
  shape = datasets.SPECS[name].image_shape
  return Source(
      load=lambda dc: datasets.load_dataset(name, dc.source, dc.data_dir,
                                            dc.cache_dir, dc.tfds_data_dir),
      image_size=lambda dc: shape[:2],
      local=datasets.SPECS[name].read_local is not None)


def _tfds_any_size(name: str) -> Source:
  return Source(
      load=lambda dc: transfer.load(name, dc.image_size, dc.tfds_data_dir),
      image_size=lambda dc: (dc.image_size, dc.image_size),
      local=False)


for _name in datasets.SPECS:
  register(_name, _local_or_tfds(_name))
for _name in transfer.SPECS:
  register(_name, _tfds_any_size(_name))
