"""Every Python block of docs/how_to.md runs as it stands.

Each block runs in a fresh namespace, in a temporary folder holding the
`runs/mnist_{random,fixed}/distilled.npz` the first blocks read (random images in
the official_random layout: 10 steps of 10 images, 3 epochs), with the
repository's root on sys.path (`from configs import default`), and with the
dataset and model registries restored afterwards. Blocks that read MNIST
skip without $DDISTILL_DATA_DIR; the PyTorch block skips without torch.
"""

import pathlib
import re

import jax
import numpy as np
import pytest

import ddistill
from ddistill import data
from ddistill import distill
from ddistill import inits
from ddistill import models
from ddistill import train
from ddistill.data import datasets

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOW_TO = ROOT / 'docs' / 'how_to.md'


def python_blocks(text: str) -> list[tuple[str, str]]:
  """(the section's heading, code) of every ```python block, in order."""
  blocks, heading = [], ''
  for match in re.finditer(r'^## ([^\n]*)$|^```python\n(.*?)^```$', text,
                           re.M | re.S):
    if match.group(1) is not None:
      heading = match.group(1)
    else:
      blocks.append((heading, match.group(2)))
  return blocks


BLOCKS = python_blocks(HOW_TO.read_text())


def _trained_like_train_on(ns):
  """The hand-written GD loop and `ddistill.train_on` train alike, and do
  train (the weights moved from the init)."""
  leaves = lambda tree: [np.asarray(a) for a in jax.tree.leaves(tree)]
  for by_hand, api, init in zip(leaves(ns['params']), leaves(ns['params_api']),
                                leaves(ns['params0'])):
    np.testing.assert_allclose(by_hand, api, rtol=1e-4, atol=1e-6)
    assert not np.allclose(by_hand, init)


def _trained_from_the_fixed_init(ns):
  """The rebuilt init is the one a run of that config distills for, and
  training moved it."""
  program = train.build_program(ns['config'], 10, (28, 28, 1))
  fixed = program.sample_inits(jax.random.key(1))  # Fixed: any key.
  init = jax.tree.leaves(ns['params0'])
  for start, want in zip(init, jax.tree.leaves(fixed)):
    np.testing.assert_array_equal(start, want[0])
  for trained, start in zip(jax.tree.leaves(ns['params']), init):
    assert trained.shape == start.shape and np.all(np.isfinite(trained))
  assert any(not np.allclose(a, b) for a, b in
             zip(jax.tree.leaves(ns['params']), init))


def _learned_beyond_chance(ns):
  """A fresh init trained on the 8 distilled images beats chance (1/4)."""
  assert ns['accuracy'] > 0.5, ns['accuracy']


CHECKS = {
    'Train a network on a distilled set, in JAX': _trained_like_train_on,
    "Train the run's own init (fixed-init sets)": _trained_from_the_fixed_init,
    'Distill arrays you pass in': _learned_beyond_chance,
}


def test_the_doc_answers_each_question():
  assert [heading for heading, _ in BLOCKS] == [
      'Train a network on a distilled set, in JAX',
      "Train the run's own init (fixed-init sets)",
      'Train on it in PyTorch, from `distilled.npz`',
      'Distill arrays you pass in',
      'Add a dataset',
      'Add a model',
  ]


@pytest.fixture
def docs_folder(tmp_path, monkeypatch):
  """A working folder with the distilled set the blocks read."""
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(ROOT))
  monkeypatch.setattr(data, 'SOURCES', dict(data.SOURCES))
  monkeypatch.setattr(models, 'MODELS', dict(models.MODELS))
  rng = np.random.default_rng(0)
  labels_SxN = np.asarray(distill.distilled_labels(10, 10, 1))
  distilled = ddistill.DistilledSet(
      images=rng.normal(size=(10, 10, 28, 28, 1)).astype(np.float32),
      labels=labels_SxN, lrs=np.full(30, 0.02, np.float32),
      mean=np.array([0.1307]), std=np.array([0.3081]), epochs=3)
  for run in ('mnist_random', 'mnist_fixed'):
    (tmp_path / 'runs' / run).mkdir(parents=True)
    ddistill.save_distilled(f'runs/{run}/distilled.npz', distilled)
  return tmp_path


@pytest.mark.parametrize('heading, code', BLOCKS,
                         ids=[heading for heading, _ in BLOCKS])
def test_block_runs(heading, code, docs_folder):
  del docs_folder
  if re.search(r'^import torch', code, re.M):
    pytest.importorskip('torch')
  if "'mnist'" in code and not datasets.resolve_data_dir():  # Reads MNIST.
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  namespace = {'__name__': '__how_to__'}
  exec(compile(code, f'{HOW_TO}: {heading}', 'exec'), namespace)  # pylint: disable=exec-used
  if heading in CHECKS:
    CHECKS[heading](namespace)


def _torch_layout(params) -> dict[str, np.ndarray]:
  """LeNet's flax params as the PyTorch block's LeNet state_dict."""
  p = jax.tree.map(np.asarray, params)
  conv = lambda k: k.transpose(3, 2, 0, 1)  # [H, W, in, out] -> [out, in, H, W]
  # fc1 reads the last conv's [5, 5, 16] output flattened as HWC in flax,
  # CHW in PyTorch.
  fc1 = p['Dense_0']['kernel'].reshape(5, 5, 16, 120).transpose(2, 0, 1, 3)
  state = {'conv1.weight': conv(p['Conv_0']['kernel']),
           'conv2.weight': conv(p['Conv_1']['kernel']),
           'fc1.weight': fc1.reshape(400, 120).T,
           'fc2.weight': p['Dense_1']['kernel'].T,
           'fc3.weight': p['Dense_2']['kernel'].T}
  for torch_name, flax_name in (('conv1', 'Conv_0'), ('conv2', 'Conv_1'),
                                ('fc1', 'Dense_0'), ('fc2', 'Dense_1'),
                                ('fc3', 'Dense_2')):
    state[f'{torch_name}.bias'] = p[flax_name]['bias']
  return {k: np.ascontiguousarray(v) for k, v in state.items()}


def test_the_pytorch_block_trains_as_train_on(docs_folder):
  """From the same init, the PyTorch block's loop gives `train_on`'s weights
  (soft labels, a different lr per step)."""
  torch = pytest.importorskip('torch')
  if not datasets.resolve_data_dir():
    pytest.skip(f'${datasets.DATA_DIR_ENV} is not set')
  del docs_folder
  rng = np.random.default_rng(1)
  distilled = ddistill.DistilledSet(
      images=rng.normal(size=(3, 10, 28, 28, 1)).astype(np.float32),
      labels=np.asarray(distill.distilled_labels(3, 10, 1)),
      lrs=rng.uniform(0.01, 0.05, 6).astype(np.float32),
      mean=np.array([0.1307]), std=np.array([0.3081]), epochs=2,
      soft_labels=rng.dirichlet(np.ones(10), (3, 10)).astype(np.float32))
  ddistill.save_distilled('runs/mnist_random/distilled.npz', distilled)
  model = models.make_model('lenet', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'),
                            conv_impl='xla')
  params0 = model.init(jax.random.key(0), distilled.images[0])['params']
  want = _torch_layout(ddistill.train_on(model, params0, distilled))
  code = dict(BLOCKS)['Train on it in PyTorch, from `distilled.npz`']
  assert 'net = LeNet()\n' in code
  code = code.replace('net = LeNet()\n',
                      'net = LeNet()\nnet.load_state_dict(init)\n')
  namespace = {'init': {k: torch.tensor(v) for k, v in
                        _torch_layout(params0).items()}}
  exec(compile(code, str(HOW_TO), 'exec'), namespace)  # pylint: disable=exec-used
  for name, value in namespace['net'].state_dict().items():
    np.testing.assert_allclose(value.numpy(), want[name], rtol=1e-5,
                               atol=1e-6, err_msg=name)
    assert not np.allclose(want[name], _torch_layout(params0)[name])
