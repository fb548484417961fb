"""Gradients checked against central finite differences, for the tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ddistill import distill
from ddistill import inits
from ddistill import models


def check(loss, tree, name, grads=None, eps=1e-6):
  """Checks jax.grad(loss)(tree)[name] along three random unit directions
  against (loss(tree + eps d) - loss(tree - eps d)) / 2 eps; run in float64.
  Returns the gradients (`grads` when given, saving a second backward)."""
  if grads is None:
    grads = jax.grad(loss)(tree)
  rng = np.random.default_rng(0)
  for _ in range(3):
    direction = rng.normal(size=tree[name].shape)
    direction /= np.linalg.norm(direction)
    plus = {**tree, name: tree[name] + eps * direction}
    minus = {**tree, name: tree[name] - eps * direction}
    numeric = (loss(plus) - loss(minus)) / (2 * eps)
    analytic = jnp.sum(grads[name] * direction)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9)
  return grads


def outer_loss_problem(model, image_shape, steps=2, epochs=2):
  """distill.outer_loss of `model` on a small problem (3 classes, one image
  per class and step, 16 random real images), in float64 (call it under
  jax.enable_x64): (loss of the distilled set, that set, a float64 cast)."""
  k = jax.random.split(jax.random.key(0), 4)
  params0 = inits.init_params(model, k[0], image_shape)
  labels = distill.distilled_labels(steps, 3, 1)
  distilled = distill.init_distilled(k[1], labels, image_shape, epochs, 0.3)
  real_x = jax.random.normal(k[2], (16, *image_shape))
  real_y = jax.random.randint(k[3], (16,), 0, 3)
  to64 = lambda t: jax.tree.map(lambda a: a.astype(jnp.float64), t)
  loss = functools.partial(distill.outer_loss, params0=to64(params0),
                           real_x=to64(real_x), real_y=real_y,
                           apply_fn=models.Apply(model), labels_SxN=labels)
  return loss, to64(distilled), to64
