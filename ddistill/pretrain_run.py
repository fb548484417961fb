"""`run_pretrain(config, workdir)`: a pool of pretrained nets, saved and tested."""

import time

import jax
import ml_collections
import numpy as np

from ddistill import evaluate
from ddistill import pretrained
from ddistill import train


def run_pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
  for field in ('num_train', 'num_heldout', 'epochs', 'batch_size',
                'decay_every', 'nets_per_chunk'):
    if int(config[field]) < 1:
      raise ValueError(f'config.{field} = {config[field]} must be >= 1')
  start = time.time()
  data = train.load_data(config)
  model, apply_fn = train.build_model(config, data.num_classes,
                                      data.image_shape)
  total = config.num_train + config.num_heldout
  chunks = []
  root = jax.random.key(config.seed)
  for i, first in enumerate(range(0, total, config.nets_per_chunk)):
    n = min(config.nets_per_chunk, total - first)
    chunks.append(jax.device_get(pretrained.pretrain(
        model, jax.random.fold_in(root, i), data.train_images,
        data.train_labels, n, config.epochs, config.batch_size, config.lr,
        config.decay_every, config.decay_factor)))
  nets = jax.tree.map(lambda *a: np.concatenate(a), *chunks)
  pool = {'train': jax.tree.map(lambda a: a[:config.num_train], nets),
          'heldout': jax.tree.map(lambda a: a[config.num_train:], nets)}
  info = {'source': data.name, 'seconds': time.time() - start,
          'config': config.to_dict(), 'test_accuracy': {}}
  for split, params in pool.items():
    # Zero GD steps: test each pretrained net as it is.
    accs = evaluate.evaluate_set(apply_fn, params,
                                 data.train_images[:1][None],
                                 data.train_labels[:1][None],
                                 np.zeros(0, np.float32), data.test_images,
                                 data.test_labels)
    info['test_accuracy'][split] = evaluate.summarize(accs)
  pretrained.save_pool(workdir, pool, info)
  return info
