"""Sets of real images the paper compares distilled data against.

Each builder returns `(images_NxHxWxC, labels_N)` with `per_class` images of
every class, laid out class-fastest (image i has label i % num_classes) like
the distilled sets. The KNN baseline classifies the test set with such a set
as its reference.
"""

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import cluster

RealSet = tuple[np.ndarray, np.ndarray]  # (images_NxHxWxC, labels_N)


def _class_fastest(per_class_KxPx: np.ndarray) -> RealSet:
  """[K, P, H, W, C] per class -> N = P * K images, class-fastest."""
  k, p = per_class_KxPx.shape[:2]
  images = np.swapaxes(per_class_KxPx, 0, 1).reshape(k * p,
                                                     *per_class_KxPx.shape[2:])
  return images, np.tile(np.arange(k, dtype=np.int32), p)


def random_real(key: jax.Array, x: np.ndarray, y: np.ndarray,
                num_classes: int, per_class: int) -> RealSet:
  """`per_class` training images of each class, drawn without replacement."""
  picks = []
  for c, k in enumerate(jax.random.split(key, num_classes)):
    idx = np.flatnonzero(y == c)
    if len(idx) < per_class:
      raise ValueError(f'class {c} has {len(idx)} training images; '
                       f'{per_class} requested')
    picks.append(idx[np.asarray(jax.random.choice(k, len(idx), (per_class,),
                                                  replace=False))])
  return _class_fastest(x[np.stack(picks)])


def kmeans_centres(seed: int, x: np.ndarray, y: np.ndarray, num_classes: int,
                   per_class: int) -> RealSet:
  """Per class, `per_class` k-means cluster centres seeded by k-means++."""
  centres = []
  for c in range(num_classes):
    flat = x[y == c].reshape(np.sum(y == c), -1)
    km = cluster.KMeans(n_clusters=per_class, init='k-means++', n_init=1,
                        random_state=seed + c).fit(flat)
    centres.append(km.cluster_centers_.reshape(per_class, *x.shape[1:]))
  return _class_fastest(np.stack(centres).astype(np.float32))


def average_real(x: np.ndarray, y: np.ndarray, num_classes: int,
                 copies: int = 1) -> RealSet:
  """The mean image of each class, repeated `copies` times (the paper
  reuses it to fill the set; in one full batch, copies change nothing)."""
  means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
  return _class_fastest(np.repeat(means[:, None], copies, axis=1).astype(
      np.float32))


KNN_METRICS = ('l1', 'l2')  # Distances knn_accuracy takes.


def knn_accuracy(ref_x: np.ndarray, ref_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, k: int, metric: str,
                 chunk: int = 100) -> float:
  """Test accuracy of k-nearest-neighbour voting over a reference set.

  metric: 'l1' or 'l2'. Ties in the vote go to the class of the nearer
  neighbours (each neighbour's vote is nudged down by its rank).
  """
  if metric not in KNN_METRICS:
    raise ValueError(f'unknown metric {metric!r}; known: {KNN_METRICS}')
  if not 1 <= k <= len(ref_x):
    raise ValueError(f'k = {k} must be in [1, {len(ref_x)}]')
  num_classes = int(max(ref_y.max(), test_y.max())) + 1
  ref_RxD = jnp.asarray(ref_x.reshape(len(ref_x), -1))
  ref_y = jnp.asarray(ref_y)

  @jax.jit
  def predict(q_BxD):
    diff_BxRxD = q_BxD[:, None, :] - ref_RxD[None]
    dist_BxR = (jnp.abs(diff_BxRxD).sum(-1) if metric == 'l1' else
                jnp.square(diff_BxRxD).sum(-1))
    _, nearest_BxK = jax.lax.top_k(-dist_BxR, k)
    votes_BxKxC = jax.nn.one_hot(ref_y[nearest_BxK], num_classes)
    votes_BxKxC = votes_BxKxC * (1.0 - 1e-3 * jnp.arange(k))[None, :, None]
    return votes_BxKxC.sum(1).argmax(-1)

  correct = 0
  for start in range(0, len(test_x), chunk):
    q = test_x[start:start + chunk]
    pred = predict(jnp.asarray(q.reshape(len(q), -1)))
    correct += int(np.sum(np.asarray(pred) == test_y[start:start + chunk]))
  return correct / len(test_x)
