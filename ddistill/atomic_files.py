"""Output files written whole or not at all.

Every writer here writes a temporary file beside the target and renames it
into place. A rename within one folder is atomic, so a process killed at any
moment leaves either the old file or the new one, never half of one: a
resumed run, a table or a reader never meets a torn file.
"""

import contextlib
import json
import os
from typing import Any, Iterator
import uuid


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
  """Yields a temporary path to write; it becomes `path` when the block ends.

  The temporary name keeps the extension of `path`, since some writers pick
  the format from it (PIL, matplotlib) or append one (np.savez), and holds
  the process id and a random tag, since processes may share a file (the
  dataset cache), on hosts whose process ids can coincide. If
  the block fails, the temporary file is removed and `path` is left as it
  was; a kill leaves it behind, as a stray file beside the intact `path`.
  """
  folder, name = os.path.split(os.path.abspath(path))
  stem, ext = os.path.splitext(name)
  tag = f'{os.getpid()}-{uuid.uuid4().hex[:8]}'
  tmp = os.path.join(folder, f'{stem}.tmp{tag}{ext}')
  try:
    yield tmp
    # On disk before the rename: after a power cut the new name must not
    # point at data the OS had not yet written.
    with open(tmp, 'rb+') as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError):
      # One line naming the file the user asked for, not the temporary one.
      raise OSError(e.errno, f'could not write {path}: '
                    f'{e.strerror or e}') from e
    raise


def write_bytes(path: str, data: bytes) -> None:
  with replacing(path) as tmp, open(tmp, 'wb') as f:
    f.write(data)


def write_text(path: str, text: str) -> None:
  with replacing(path) as tmp, open(tmp, 'w') as f:
    f.write(text)


def write_json(path: str, value: Any, indent: int | None = 2) -> None:
  write_text(path, json.dumps(value, indent=indent))
