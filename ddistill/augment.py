"""Differentiable Siamese augmentation (DSA; Zhao and Bilen, ICML 2021).

Transforms of image batches x_BxHxWxC that are differentiable in the
images, so a meta-gradient flows back through them to the distilled set.
"Siamese": the transform is drawn from a key, and the same key draws the
same transform for any batch, so distilled and real images can be
augmented alike in one outer iteration:

  dsa = DSA(('crop', 'scale'), strength=1.0)
  params = dsa.sample_params(key)  # One draw, shared by every image.
  x1, x2 = dsa.apply(params, x1), dsa.apply(params, x2)  # == dsa(key, x)

Transforms (DSA's magnitudes at strength 1, from the authors' code;
`strength` scales each, and 0 gives the identity):
  crop    shift by up to 1/8 of the side, whole pixels, zeros shifted in
  flip    mirror left-right with probability 1/2 (strength s < 1: s / 2)
  scale   zoom each axis by a factor in [1/1.2, 1.2] about the centre
  rotate  rotate by up to 15 degrees about the centre
  color   brightness (add -0.5 to 0.5), saturation (x0 to x2 about each
          pixel's channel mean), contrast (x0.5 to x1.5 about the image's
          mean); each factor f becomes 1 + strength * (f - 1)
  cutout  zero a square of half the side
Scale and rotate resample bilinearly (zeros outside the image); every
transform is linear in the images.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy import ndimage

from ddistill import workdir
from ddistill.errors import ConfigError

TRANSFORMS = ('crop', 'flip', 'scale', 'rotate', 'color', 'cutout')
# one: one transform of the list, drawn per key (the DSA code's default);
# all: every transform of the list, in its order.
MODES = ('one', 'all')

CROP_SHIFT = 0.125  # Largest shift, as a fraction of the side.
FLIP_PROB = 0.5
SCALE_RATIO = 1.2  # Per-axis factors in [1 / ratio, ratio].
ROTATE_DEGREES = 15.0
BRIGHTNESS = 1.0  # Adds (u - 0.5) * BRIGHTNESS.
SATURATION = 2.0  # Scales the colour about the pixel's mean by u * 2.
CONTRAST = 0.5  # Scales about the image's mean by u + 0.5.
CUTOUT_SIDE = 0.5  # Side of the zeroed square, as a fraction of the image's.

# Uniform draws each transform takes per image.
_NUM_DRAWS = {'crop': 2, 'flip': 1, 'scale': 2, 'rotate': 1, 'color': 3,
              'cutout': 2}


def _warp(x_HxWxC: jax.Array, matrix_2x2: jax.Array,
          shift_2: jax.Array) -> jax.Array:
  """Output pixel p reads the input at p + (M - I)(p - centre) + shift.

  Bilinear, zeros outside. Written with M - I so that with M = I a shift
  by whole pixels reads whole pixels exactly (strength 0 is exactly the
  identity).
  """
  h, w, _ = x_HxWxC.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                            jnp.arange(w, dtype=jnp.float32), indexing='ij')
  grid_2xHxW = jnp.stack([rows, cols])
  centred = grid_2xHxW - jnp.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
  source = (grid_2xHxW + shift_2[:, None, None] +
            jnp.einsum('ij,jhw->ihw', matrix_2x2 - jnp.eye(2), centred))
  sample = lambda x_HxW: ndimage.map_coordinates(
      x_HxW, [source[0], source[1]], order=1, mode='constant', cval=0.0)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(x_HxWxC)


def _crop(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  sides = x_HxWxC.shape[:2]
  # Whole-pixel shifts in [-m, m] per axis, as the DSA code.
  most = jnp.array([int(CROP_SHIFT * strength * n + 0.5) for n in sides])
  shift = jnp.minimum(jnp.floor(u * (2 * most + 1)), 2 * most) - most
  return _warp(x_HxWxC, jnp.eye(2), shift)


def _flip(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  return jnp.where(u[0] < FLIP_PROB * min(strength, 1.0), x_HxWxC[:, ::-1],
                   x_HxWxC)


def _scale(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  ratio = 1.0 + (SCALE_RATIO - 1.0) * strength
  factors = 1.0 / ratio + u * (ratio - 1.0 / ratio)
  return _warp(x_HxWxC, jnp.diag(factors), jnp.zeros(2))


def _rotate(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  angle = (2.0 * u[0] - 1.0) * math.radians(ROTATE_DEGREES) * strength
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  return _warp(x_HxWxC, jnp.array([[cos, -sin], [sin, cos]]), jnp.zeros(2))


def _color(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  # Each factor is 1 + strength * (DSA's factor - 1), applied as
  # x + (factor - 1) * (x - mean), which is x exactly at strength 0.
  x = x_HxWxC + (u[0] - 0.5) * BRIGHTNESS * strength
  saturation = strength * (u[1] * SATURATION - 1.0)
  x = x + saturation * (x - x.mean(axis=-1, keepdims=True))
  contrast = strength * (u[2] + CONTRAST - 1.0)
  return x + contrast * (x - x.mean())


def _cutout(u: jax.Array, x_HxWxC: jax.Array, strength: float) -> jax.Array:
  inside = []
  for axis, n in enumerate(x_HxWxC.shape[:2]):
    side = int(CUTOUT_SIDE * strength * n + 0.5)
    # The square's centre, as the DSA code draws it; squares at the border
    # are cut by it.
    centre = jnp.floor(u[axis] * (n + 1 - side % 2))
    first = centre - side // 2
    index = jnp.arange(n)
    inside.append((index >= first) & (index < first + side))
  keep_HxW = ~(inside[0][:, None] & inside[1][None, :])
  return x_HxWxC * keep_HxW[..., None].astype(x_HxWxC.dtype)


_FNS = {'crop': _crop, 'flip': _flip, 'scale': _scale, 'rotate': _rotate,
        'color': _color, 'cutout': _cutout}


@dataclasses.dataclass(frozen=True)
class DSA:
  """Transforms `names` at `strength`, drawn as `mode` says (see MODES).

  Hashable, so jitted functions can take it as a static argument.
  """
  names: tuple[str, ...]
  strength: float = 1.0
  mode: str = 'one'

  def __post_init__(self):
    unknown = [n for n in self.names if n not in TRANSFORMS]
    if unknown:
      raise ConfigError(f'unknown DSA transforms {unknown}; known: '
                       f'{list(TRANSFORMS)}')
    if self.mode not in MODES:
      raise ConfigError(f'unknown DSA mode {self.mode!r}; known: {MODES}')
    if not self.strength >= 0:
      raise ConfigError(f'DSA strength must be >= 0, not {self.strength}')

  def sample_params(self, key: jax.Array, num: int = 1) -> dict:
    """The transform drawn from `key`: uniform draws [num, k] per transform.

    num: 1 shares one draw between every image of any batch (Siamese);
    B gives each of B images its own. A transform's draws depend only on
    the key and its name, not on which others are listed.
    """
    params = {
        name: jax.random.uniform(
            jax.random.fold_in(key, TRANSFORMS.index(name)),
            (num, _NUM_DRAWS[name]))
        for name in self.names
    }
    if self.mode == 'one':
      params['choice'] = jax.random.randint(
          jax.random.fold_in(key, len(TRANSFORMS)), (), 0, len(self.names))
    return params

  def _apply_one(self, name: str, u_NxK: jax.Array,
                 x_BxHxWxC: jax.Array) -> jax.Array:
    fn = functools.partial(_FNS[name], strength=self.strength)
    if u_NxK.shape[0] == 1:
      return jax.vmap(fn, in_axes=(None, 0))(u_NxK[0], x_BxHxWxC)
    if u_NxK.shape[0] != x_BxHxWxC.shape[0]:
      raise ValueError(f'{u_NxK.shape[0]} draws of {name} for a batch of '
                       f'{x_BxHxWxC.shape[0]} images; draw 1 or as many')
    return jax.vmap(fn)(u_NxK, x_BxHxWxC)

  def apply(self, params: dict, x_BxHxWxC: jax.Array) -> jax.Array:
    """The transform `params` (from `sample_params`) applied to a batch."""
    fns = [functools.partial(self._apply_one, name, params[name])
           for name in self.names]
    if self.mode == 'one' and len(fns) > 1:
      return jax.lax.switch(params['choice'], fns, x_BxHxWxC)
    for fn in fns:
      x_BxHxWxC = fn(x_BxHxWxC)
    return x_BxHxWxC

  def __call__(self, key: jax.Array, x_BxHxWxC: jax.Array,
               per_image: bool = False) -> jax.Array:
    """`apply(sample_params(key), x)`; per_image: a draw for each image."""
    num = x_BxHxWxC.shape[0] if per_image else 1
    return self.apply(self.sample_params(key, num), x_BxHxWxC)


def from_spec(spec: str, strength: float = 1.0,
              mode: str = 'one') -> DSA | None:
  """A DSA of the comma-separated transforms in `spec`; None if it is ''."""
  names = tuple(workdir.names(spec))
  return DSA(names, float(strength), mode) if names else None
