"""Write a file so that it appears at its path complete or not at all."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only when the block succeeds.

    The data goes to a temporary file (mode 0600) in the same directory, is
    flushed to disk, then renamed over ``path``; with ``overwrite=False`` it
    is linked there instead, which raises ``FileExistsError`` if ``path``
    exists. If anything raises, the temporary file is deleted and ``path`` is
    left as it was.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temp_name, target)
        else:
            os.link(temp_name, target)
    finally:
        Path(temp_name).unlink(missing_ok=True)
    fsync_directory(target.parent)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make the directory's entries (a created, renamed, linked or deleted file) durable."""
    # A rename or link is durable only once the directory entry itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
