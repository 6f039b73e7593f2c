"""Safe extraction of zip and tar archives (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

    from geodistill.data.archives import extract
    extract(Path("Chicago.zip"), Path("data/VIGOR"), expect=["Chicago/panorama", "Chicago/satellite"])

Every member is checked before anything is written: absolute paths, `..` components, backslashes,
symlinks whose target leaves the destination (followed through the archive's own symlinks),
members stored under a symlink, hard links to anything but an earlier regular file, device files
and FIFOs are refused with an UnsafeArchiveError naming the archive and the member; an archive
missing a path of `expect` is refused too.
Members are written into `<dest>/.<archive name>.partial/` and moved into `dest` only once all are
written; the caller writes its completion stamp after `extract` returns, so an interrupted
extraction never looks complete (a re-run starts it again from the archive).
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

log = logging.getLogger(__name__)

MAX_LINK_HOPS = 40
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


class ArchiveError(Exception):
    """An archive that cannot be extracted (not an archive, a clash with existing files...)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member that would write outside the destination or is not a plain file/dir/link."""


@dataclass(frozen=True)
class Member:
    parts: tuple[str, ...]                     # path inside the archive, split on '/'
    kind: str                                  # file | dir | symlink | hardlink
    target: str = ""                           # link target (hardlink: path inside the archive)
    open: Callable[[], IO[bytes]] | None = None


def extract(archive: Path, dest: Path, expect: Iterable[str] = ()) -> int:
    """Extract a zip or tar archive into `dest` after checking every member; returns the member count."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive}")
    try:
        with _open_members(archive) as members:
            hard_targets = _check(archive, members, expect)
            staging = dest / f".{archive.name}.partial"
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            try:
                for m in members:
                    _write(m, staging, hard_targets)
                _merge(staging, dest)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except CORRUPT as e:
        raise ArchiveError(f"{archive}: corrupt or truncated archive ({type(e).__name__}: {e})") from None
    log.info("%s: %d members extracted into %s", archive, len(members), dest)
    return len(members)


@contextlib.contextmanager
def _open_members(archive: Path) -> Iterator[list[Member]]:
    """The archive opened, as a list of Members (closed again on exit)."""
    with open(archive, "rb") as f:
        head = f.read(4)
    if head in ZIP_MAGIC:
        with zipfile.ZipFile(archive) as zf:
            yield [_zip_member(archive, zf, info) for info in zf.infolist()]
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            yield [_tar_member(archive, tf, info) for info in tf.getmembers()]
    else:
        raise ArchiveError(f"{archive}: not a zip or tar archive")


def _zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    parts = _split(archive, info.filename)
    kind = stat.S_IFMT(info.external_attr >> 16)        # 0: no Unix mode stored, a plain file
    if info.is_dir() or kind == stat.S_IFDIR:
        return Member(parts, "dir")
    if kind == stat.S_IFLNK:
        return Member(parts, "symlink", zf.read(info).decode("utf-8", "replace"))
    if kind not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a special file (mode "
                                 f"{info.external_attr >> 16:o}); refusing to extract anything")
    return Member(parts, "file", open=lambda: zf.open(info))


def _tar_member(archive: Path, tf: tarfile.TarFile, info: tarfile.TarInfo) -> Member:
    parts = _split(archive, info.name)
    if info.isdir():
        return Member(parts, "dir")
    if info.issym():
        return Member(parts, "symlink", info.linkname)
    if info.islnk():
        return Member(parts, "hardlink", info.linkname)
    if info.isreg():
        return Member(parts, "file", open=lambda: tf.extractfile(info))
    what = "device file" if info.ischr() or info.isblk() else "FIFO" if info.isfifo() else "special member"
    raise UnsafeArchiveError(f"{archive}: member {info.name!r} is a {what}; refusing to extract anything")


def _split(archive: Path, name: str) -> tuple[str, ...]:
    """A member name as path parts, refusing absolute paths, `..`, backslashes and NUL."""
    def unsafe(why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{archive}: member {name!r} {why}; refusing to extract anything")
    if "\0" in name or "\\" in name:
        raise unsafe("contains a NUL or a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise unsafe("is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise unsafe("has a '..' component")
    if not parts:
        raise unsafe("has an empty path")
    return parts


def _check(archive: Path, members: list[Member], expect: Iterable[str]) -> dict:
    """Refuse links that resolve outside the archive root, members stored under a symlink, hard
    links to anything but an earlier regular file and a missing `expect` path. Returns each hard
    link's target as resolved parts."""
    links = {m.parts: m.target for m in members if m.kind == "symlink"}
    files: set[tuple[str, ...]] = set()
    hard: dict[tuple[str, ...], tuple[str, ...]] = {}

    def refuse(m: Member, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{archive}: member {'/'.join(m.parts)!r} {why}; refusing to extract anything")
    for m in members:
        if any(m.parts[:i] in links for i in range(1, len(m.parts))):
            raise refuse(m, "lies under a symlink of the archive")
        if m.kind != "symlink" and m.parts in links:
            raise refuse(m, "is both a symlink and another kind of member")
        if m.kind == "symlink":
            inside = _resolve(list(m.parts[:-1]) + m.target.split("/"), links)
            if "\0" in m.target or m.target.startswith("/") or inside is None:
                raise refuse(m, f"is a symlink to {m.target!r}, outside the destination")
        elif m.kind == "hardlink":
            target = None if m.target.startswith("/") else _resolve(m.target.split("/"), links)
            if target is None or target not in files:
                raise refuse(m, f"is a hard link to {m.target!r}, not an earlier regular file of the archive")
            hard[m.parts] = target
        elif m.kind == "file":
            files.add(m.parts)
    present = {m.parts[:i] for m in members for i in range(1, len(m.parts) + 1)}
    missing = [p for p in expect if tuple(q for q in p.split("/") if q) not in present]
    if missing:
        tops = sorted({m.parts[0] for m in members})
        raise ArchiveError(f"{archive}: holds no {', '.join(missing)} (its top-level entries: "
                           f"{', '.join(tops[:10]) or 'none'}{' ...' if len(tops) > 10 else ''})")
    return hard


def _resolve(parts: list[str], links: dict[tuple[str, ...], str]) -> tuple[str, ...] | None:
    """Where a path inside the archive ends up once the archive's symlinks are followed; None when
    it leaves the root (or loops)."""
    out: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(p)
        target = links.get(tuple(out))
        if target is not None:
            hops += 1
            if hops > MAX_LINK_HOPS or target.startswith("/"):
                return None
            out.pop()
            todo = target.split("/") + todo
    return tuple(out)


def _write(m: Member, root: Path, hard_targets: dict) -> None:
    path = root.joinpath(*m.parts)
    if m.kind == "dir":
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    if m.kind == "symlink":
        os.symlink(m.target, path)
    elif m.kind == "hardlink":
        os.link(root.joinpath(*hard_targets[m.parts]), path)
    else:
        with m.open() as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _merge(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`: whole folders are renamed where `dst` has none yet, files
    replace files; a file meeting a folder (or the reverse) is an error naming both."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge(entry, target)
            continue
        if target.is_dir() and not target.is_symlink():
            raise ArchiveError(f"cannot extract {entry.name!r} over the existing folder {target}")
        if entry.is_dir() and not entry.is_symlink() and (target.exists() or target.is_symlink()):
            raise ArchiveError(f"cannot extract the folder {entry.name!r} over the existing file {target}")
        os.replace(entry, target)
