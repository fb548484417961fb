import os
import tempfile

import jax
import pytest

from ddistill.data import datasets

# One persistent XLA compilation cache for the whole test session, shared with
# the subprocesses tests launch and the pytest-xdist workers (they inherit the
# environment): most tests rebuild the same programs, and compiling them again
# is most of their time.
_CACHE = (os.environ.get('JAX_COMPILATION_CACHE_DIR') or
          tempfile.mkdtemp(prefix='ddistill_jax_cache_'))
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
jax.config.update('jax_compilation_cache_dir', _CACHE)
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.2'
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)


@pytest.fixture(scope='session')
def mnist():
  """Real MNIST from $DDISTILL_DATA_DIR (CI points it at ../shared/data)."""
  if not datasets.resolve_data_dir():
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  return datasets.load_dataset('mnist', source='local')
