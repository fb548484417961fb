"""Errors a user can act on end a command with one line, not a traceback."""

import functools

from ddistill import errors

# Each names the file, folder or field at fault in its message. OSError: a
# full disk or a missing folder, say; atomic_files names the file it was
# writing.
ERRORS = (errors.UserError, OSError)


def one_line(main):
  """`main` for absl's app.run, with ERRORS ending it as one line (exit 1)."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except ERRORS as e:
      raise SystemExit(f'error: {e}') from None

  return wrapped
