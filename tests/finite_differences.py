"""Gradients checked against central finite differences, for the tests."""

import jax
import jax.numpy as jnp
import numpy as np


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
