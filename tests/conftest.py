import importlib.util
import os

import jax
import pytest

from ddistill.data import datasets

# One persistent XLA compilation cache, shared with the subprocesses tests
# launch and the pytest-xdist workers (they inherit the environment), and kept
# between runs: compiling is most of the suite's time, and a second run on the
# same machine reuses what the first compiled. The cache is keyed by program,
# jax version and flags, and evicts its least recently used entries past
# _CACHE_BYTES.
_CACHE = os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.join(
    os.path.expanduser('~'), '.cache', 'ddistill', 'jax_tests')
_CACHE_BYTES = 2**30
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
jax.config.update('jax_compilation_cache_dir', _CACHE)
if importlib.util.find_spec('filelock'):  # jax needs it to cap the cache.
  os.environ['JAX_COMPILATION_CACHE_MAX_SIZE'] = str(_CACHE_BYTES)
  jax.config.update('jax_compilation_cache_max_size', _CACHE_BYTES)
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.2'
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)


@pytest.fixture(scope='session')
def mnist():
  """Real MNIST from $DDISTILL_DATA_DIR (CI points it at ../shared/data)."""
  if not datasets.resolve_data_dir():
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  return datasets.load_dataset('mnist', source='local')
