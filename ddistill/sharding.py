"""Where arrays live: stacked inits split over every device, the rest replicated.

One mesh axis, 'inits', spans all devices of all processes. The sampled
inits of an outer iteration and the held-out models of an evaluation are
split along it; the distilled set, optimizer state and data are replicated,
so the meta-gradient's mean over inits becomes an all-reduce. The same code
runs on 1 CPU, 8 fake CPU devices, a GPU, or a TPU pod slice.
"""

from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = 'inits'


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def split_inits(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Host arrays, the same on every process -> global arrays so sharded."""

  def put_one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

  return jax.tree.map(put_one, tree)


def to_host(tree: Any) -> Any:
  """Global arrays -> numpy, gathered from every process if need be."""

  def get(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return np.asarray(x)
    if x.sharding.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(get, tree)


def pad_to_multiple(tree: Any, multiple: int) -> tuple[Any, int]:
  """Pads axis 0 (by repeating the first entry) to a multiple; returns n."""
  n = jax.tree.leaves(tree)[0].shape[0]
  extra = -n % multiple
  if not extra:
    return tree, n
  pad = lambda a: np.concatenate([np.asarray(a)] +
                                 [np.asarray(a[:1])] * extra)
  return jax.tree.map(pad, tree), n
