"""The Colab notebook runs top to bottom on the local data."""

import os
import re

import nbformat
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_notebook_executes(mnist, monkeypatch):
  del mnist  # Needs $DDISTILL_DATA_DIR, like the notebook's run.
  # A short run: the notebook's own full quick run is about 2 minutes.
  monkeypatch.setenv('DDISTILL_NOTEBOOK_ITERATIONS', '20')
  path = os.path.join(REPO, 'notebooks', 'distill_mnist.ipynb')
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': REPO}}).execute()
  outputs = ''.join(o.get('text', '') for cell in nb.cells
                    if cell.cell_type == 'code' for o in cell.get('outputs', []))
  # 20 iterations already lift the fixed init well above chance.
  acc = re.search(r'Test accuracy of LeNet trained on the 100 distilled '
                  r'images: ([\d.]+)%', outputs)
  assert acc and float(acc.group(1)) > 30, outputs[-2000:]
  assert any('image/png' in o.get('data', {}) for cell in nb.cells
             if cell.cell_type == 'code' for o in cell.get('outputs', []))
