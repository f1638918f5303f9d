"""How every command-line entry point reports a user's mistake.

``run(fn, argv)`` calls ``fn(argv)``. A mistake of the user (a missing file, an unknown or
mistyped config key, a corrupt or mismatched parameter file, a missing data set: the
exceptions in :data:`USER_ERRORS`, whose messages name the file or key and say what to do)
is printed as one line ``error: ...`` on stderr and the process exits with status 1. With
``--debug`` on the command line the exception propagates with its traceback.
"""
import sys

__all__ = ['UserError', 'USER_ERRORS', 'run', 'split_debug', 'error_line']


class UserError(Exception):
    """A mistake of the user, reported without a traceback."""


def _user_errors():
    errors = [UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
              PermissionError, ValueError, KeyError]
    try:
        from dcn.tools.demo import DemoError
        errors.append(DemoError)
    except ImportError:  # pragma: no cover - the demo module is part of the package
        pass
    return tuple(errors)


USER_ERRORS = None  # filled on first use (the demo module imports this one)


def split_debug(argv):
    """(argv without ``--debug``, whether it was given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv
    return [a for a in argv if a != '--debug'], debug


def error_line(exc):
    """The one-line message of ``exc`` (KeyError's repr quotes removed)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        msg = exc.args[0]
    else:
        msg = str(exc) or type(exc).__name__
    return ' '.join(msg.split())


def run(fn, argv=None):
    """``fn(argv)`` with user errors reported as ``error: ...`` (exit status 1)."""
    global USER_ERRORS
    if USER_ERRORS is None:
        USER_ERRORS = _user_errors()
    argv, debug = split_debug(argv)
    if debug:
        return fn(argv)
    try:
        return fn(argv)
    except USER_ERRORS as exc:
        sys.stdout.flush()
        sys.stderr.write('error: %s (run with --debug for the traceback)\n' % error_line(exc))
        sys.stderr.flush()
        raise SystemExit(1)
