"""Section 3.3: one GD step reaches the minimum from any init iff M >= D."""

import jax
import jax.numpy as jnp
import numpy as np

from ddistill.paper import linear


def test_one_step_is_the_closed_form():
  k = jax.random.split(jax.random.key(0), 3)
  distilled = {'d': jax.random.normal(k[0], (3, 4)),
               't': jax.random.normal(k[1], (3, 1)), 'raw_lr': jnp.asarray(0.3)}
  theta0 = jax.random.normal(k[2], (4, 1))
  lr = jax.nn.softplus(0.3)
  d, t = distilled['d'], distilled['t']
  expected = (jnp.eye(4) - lr / 3 * d.T @ d) @ theta0 + lr / 3 * d.T @ t
  np.testing.assert_allclose(linear.one_step(distilled, theta0), expected,
                             rtol=1e-5, atol=1e-6)


def test_enough_points_reach_the_minimum_and_too_few_cannot():
  dim = 6
  problem = linear.make_problem(jax.random.key(0), 200, dim)
  theta0 = jax.random.normal(jax.random.key(1), (50, dim, 1))  # Held out.
  untrained = linear.excess_losses({'d': jnp.zeros((1, dim)),
                                    't': jnp.zeros((1, 1)),
                                    'raw_lr': jnp.asarray(-50.0)},
                                   problem, theta0).mean()
  enough = linear.distill(jax.random.key(2), problem, dim,
                          num_iterations=1500)
  assert linear.condition_residual(enough) < 1e-2
  assert linear.excess_losses(enough, problem, theta0).max() < 1e-4 * untrained
  too_few = linear.distill(jax.random.key(2), problem, dim - 2,
                           num_iterations=1500)
  # M < D points learn something, but not the minimum: rank M leaves D - M
  # directions of I - (η/M) dᵀd untouched.
  too_few_loss = linear.excess_losses(too_few, problem, theta0).mean()
  assert 1e-2 * untrained < too_few_loss < 0.8 * untrained
