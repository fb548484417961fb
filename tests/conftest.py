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
# _CACHE_BYTES. Programs that compile in under 0.2 s are not kept: keeping
# them too made a cold run slower (benchmarks/README.md).
_CACHE = os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.join(
    os.path.expanduser('~'), '.cache', 'ddistill', 'jax_tests')
_CACHE_BYTES = 2**30


def _share(option, value):
  """Sets a jax option here and, through the environment, in subprocesses."""
  os.environ[option.upper()] = str(value)
  jax.config.update(option, value)


_share('jax_compilation_cache_dir', _CACHE)
if importlib.util.find_spec('filelock'):  # jax needs it to cap the cache.
  _share('jax_compilation_cache_max_size', _CACHE_BYTES)
_share('jax_persistent_cache_min_compile_time_secs', 0.2)


@pytest.fixture(scope='session')
def mnist():
  """Real MNIST from $DDISTILL_DATA_DIR (CI points it at ../shared/data)."""
  if not datasets.resolve_data_dir():
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  return datasets.load_dataset('mnist', source='local')
