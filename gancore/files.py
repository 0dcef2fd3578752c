"""Files that appear whole or not at all (standard library only).

A crash, a kill or a full disk while one of these is written leaves the old
file (or nothing) under the final name, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMPORARY = ".tmp-"  # in the name of every temporary file of `atomic_path`


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends cleanly.

    The temporary name is hidden (a leading dot) and keeps the extension that writers
    look at (".png", ".gif"). On any error it is removed and `path` is left as it was; one
    that a kill left behind is removed by `remove_temporaries`.
    A failure is an OSError naming `path` (torch, for one, reports a full disk as a RuntimeError).
    """
    path, tmp = Path(path), None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}{TEMPORARY}", suffix=path.suffix)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if not e.errno:
            raise
        raise type(e)(e.errno, e.strerror, str(path)) from None  # naming the file meant, not its hidden temporary
    except RuntimeError as e:
        failed = OSError(errno.EIO, (str(e).strip().splitlines() or [type(e).__name__])[0][:160], str(path))
        raise failed from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> None:
    """Removes what interrupted writes left in `folder`: `atomic_path`'s temporary files, temporary
    and `replace_dir`'s old folders, `unwritable`'s probes (only while no other process writes there)."""
    for pattern in (f".*{TEMPORARY}*", ".*.tmp", ".*.old", ".write-test*"):
        for leftover in folder.glob(pattern):
            remove(leftover)


def write_text(path: Path | str, text: str) -> None:
    """`path` holds `text`, or what it held before."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def replace_dir(new: Path, path: Path) -> None:
    """Moves the finished folder `new` to `path`; an old `path` is removed only after `new` is in place."""
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def remove(path: Path) -> None:
    """Removes a file or a folder, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def unwritable(folder: Path | str) -> str | None:
    """Why no file can be made in `folder` ("does not exist", "cannot be written (...)"), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return "does not exist"
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"cannot be written ({e.strerror})"
    return None


def disk_full(folder: Path | str, margin: int = 16 * 2**20) -> bool:
    """Whether the file system of `folder` has less than `margin` bytes left."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def output_problem(flag: str, path: Path | str, suffix: str | None = None) -> str | None:
    """One sentence saying why the file `path` that `flag` names cannot be written, or None:
    its folder is missing or read-only, it is a folder, or it does not end in `suffix`."""
    path = Path(path)
    if problem := unwritable(path.absolute().parent):
        return f"the folder of {flag} {path} {problem}; create it or choose another path."
    if path.is_dir():
        return f"{flag} {path} is a folder; name a file {f'ending in {suffix} ' if suffix else ''}in it."
    if suffix and path.suffix.lower() != suffix:
        return f"{flag} {path} must end in {suffix} (that is what is written), e.g. {path.with_suffix(suffix).name}."
    return None
