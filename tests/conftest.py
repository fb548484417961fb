import pytest

from ddistill import datasets


@pytest.fixture(scope='session')
def mnist():
  """Real MNIST from $DDISTILL_DATA_DIR (CI points it at ../shared/data)."""
  if not datasets.resolve_data_dir():
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  return datasets.load_dataset('mnist', source='local')
