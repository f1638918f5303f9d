"""Crash-safe file writes shared by checkpoints, caches and result files.

Every write goes to a temporary file in the destination directory, is flushed and
fsync'ed, then renamed over the destination: an interrupted write never leaves a
truncated file and never destroys the previous version.
"""
import os
import tempfile

__all__ = ['atomic_write', 'atomic_write_bytes', 'atomic_write_text']


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, writer):
    """Call ``writer(tmp_path)`` then atomically move ``tmp_path`` to ``path``.

    On any failure the temporary file is removed and ``path`` is left untouched.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                               dir=directory)
    os.close(fd)
    try:
        # mkstemp creates the file 0600: give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        writer(tmp)
        with open(tmp, 'rb+') as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)
    return path


def atomic_write_bytes(path, data):
    """Atomically replace ``path`` with the bytes ``data``."""
    def _write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    return atomic_write(path, _write)


def atomic_write_text(path, text):
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    return atomic_write_bytes(path, text.encode('utf-8'))
