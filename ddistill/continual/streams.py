"""Task streams for continual learning (the paper's Section 4.2, after GEM).

Permuted MNIST: task k applies a fixed random pixel permutation to every
image; each task trains on `train_per_task` images and tests on the whole
permuted test split. Split CIFAR-100: 20 tasks of 5 classes each. Images of a
task are made on demand, so 20 permuted copies of MNIST never sit in memory.
"""

import dataclasses

import jax
import numpy as np

from ddistill.data import datasets


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: its train and test images (NHWC) and labels."""
  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  classes: tuple[int, ...]  # Labels the task uses (all 10 for permutations).


def class_mask(task: Task, num_classes: int) -> np.ndarray:
  """[num_classes] bool: the classes `task` trains on (its output head)."""
  return np.isin(np.arange(num_classes), task.classes)


@dataclasses.dataclass(frozen=True)
class PermutedStream:
  """Permuted MNIST: `perms[k]` maps flat pixel positions for task k."""
  data: datasets.Dataset
  perms: np.ndarray  # [tasks, H*W*C]
  train_idx: np.ndarray  # [tasks, train_per_task] indices into train split.

  def __len__(self) -> int:
    return len(self.perms)

  def task(self, k: int) -> Task:
    shape = self.data.image_shape
    permute = lambda x: x.reshape(len(x), -1)[:, self.perms[k]].reshape(
        len(x), *shape)
    idx = self.train_idx[k]
    return Task(permute(self.data.train_images[idx]),
                self.data.train_labels[idx],
                permute(self.data.test_images), self.data.test_labels,
                tuple(range(self.data.num_classes)))


def unit_pixels(data: datasets.Dataset) -> datasets.Dataset:
  """Undoes the normalization: pixels in [0, 1], as GEM's permuted MNIST.

  (With normalized MNIST, about 3x larger inputs, GEM at lr 0.1 loses some
  8 points of final accuracy.)
  """
  unit = lambda x: (x * data.std + data.mean).astype(np.float32)
  return dataclasses.replace(data, train_images=unit(data.train_images),
                             test_images=unit(data.test_images),
                             mean=np.zeros_like(data.mean),
                             std=np.ones_like(data.std))


def permuted(data: datasets.Dataset, key: jax.Array, num_tasks: int,
             train_per_task: int) -> PermutedStream:
  """`num_tasks` permutations of `data`, each with its own training images."""
  if num_tasks < 1 or train_per_task < 1:
    raise ValueError(f'num_tasks ({num_tasks}) and train_per_task '
                     f'({train_per_task}) must be >= 1')
  if train_per_task > len(data.train_images):
    raise ValueError(f'train_per_task = {train_per_task} exceeds the '
                     f'{len(data.train_images)} training images')
  size = int(np.prod(data.image_shape))
  k_perm, k_idx = jax.random.split(key)
  perms = np.stack([np.asarray(jax.random.permutation(k, size))
                    for k in jax.random.split(k_perm, num_tasks)])
  idx = np.stack([np.asarray(jax.random.choice(
      k, len(data.train_images), (train_per_task,), replace=False))
                  for k in jax.random.split(k_idx, num_tasks)])
  return PermutedStream(data, perms, idx)


@dataclasses.dataclass(frozen=True)
class SplitStream:
  """Class-incremental splits: task k holds classes k*c .. (k+1)*c - 1."""
  data: datasets.Dataset
  classes_per_task: int
  num_tasks: int

  def __len__(self) -> int:
    return self.num_tasks

  def task(self, k: int) -> Task:
    classes = tuple(range(k * self.classes_per_task,
                          (k + 1) * self.classes_per_task))
    tr = np.isin(self.data.train_labels, classes)
    te = np.isin(self.data.test_labels, classes)
    return Task(self.data.train_images[tr], self.data.train_labels[tr],
                self.data.test_images[te], self.data.test_labels[te],
                classes)


def split(data: datasets.Dataset, classes_per_task: int,
          num_tasks: int = 0) -> SplitStream:
  """E.g. CIFAR-100 in 20 tasks of 5 classes (2,500 training images each).

  num_tasks: the first so many tasks; 0 for all.
  """
  if classes_per_task < 1 or data.num_classes % classes_per_task:
    raise ValueError(f'classes_per_task = {classes_per_task} must divide '
                     f'the {data.num_classes} classes')
  available = data.num_classes // classes_per_task
  if not 0 <= num_tasks <= available:
    raise ValueError(f'num_tasks = {num_tasks}: there are {available}')
  return SplitStream(data, classes_per_task, num_tasks or available)
