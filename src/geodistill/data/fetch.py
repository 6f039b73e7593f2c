"""Fetch one file safely: a resumable HTTP(S) download or a local copy, verified before it is named.

    from geodistill.data.fetch import Checksum, fetch
    fetch("https://host/labels.txt", Path("data/VIGOR/labels.txt"), Checksum("git_blob", "4b82..."))

The bytes go to `<dest>.part`. A later attempt (or a later run) resumes it with a
`Range: bytes=N-` request; a server that answers 200 instead restarts it from zero. Connection
errors, bodies shorter than their Content-Length and 5xx/429 answers are retried with exponential
back-off. Only a file whose hash matches is renamed to `dest`, so a half-finished or corrupt
download never looks finished. A mismatch is fetched once more from zero, then raises naming the
URL and both hashes. A `dest` that already holds the right bytes is not fetched again.

Pins are sha256 or git blob ids (sha1 of b"blob <size>\\0" + content, what `git hash-object`
prints), the latter being how files in a public git repository are pinned.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

HASH_LENGTHS = {"sha256": 64, "git_blob": 40}
CHUNK = 1 << 20
USER_AGENT = "geodistill-download"
MAX_DELAY_S = 60.0


class DownloadError(Exception):
    """A file that could not be obtained; the message names the source and what to do."""


class ChecksumError(DownloadError):
    """Bytes that do not match their pin (or a pin that is missing)."""


@dataclass(frozen=True)
class Checksum:
    """A pin: kind 'sha256' or 'git_blob', value lowercase hex."""
    kind: str
    value: str

    def __post_init__(self):
        if self.kind not in HASH_LENGTHS:
            raise ChecksumError(f"unknown hash kind {self.kind!r} (use one of {', '.join(HASH_LENGTHS)})")
        if self.value is None:
            raise ChecksumError(f"cannot verify against a null {self.kind}: pin the file first")
        n = HASH_LENGTHS[self.kind]
        if not re.fullmatch(rf"[0-9a-fA-F]{{{n}}}", str(self.value)):
            raise ChecksumError(f"{self.kind} must be {n} hex digits, got {self.value!r}")
        object.__setattr__(self, "value", str(self.value).lower())

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def git_blob_id(data: bytes) -> str:
    """What `git hash-object` prints for a file holding `data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_digest(path: Path, kind: str) -> str:
    """sha256 or git blob id of a file, read in chunks."""
    path = Path(path)
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, checksum: Checksum, what: str) -> None:
    """Raise ChecksumError naming `what` (a URL or path) unless the file matches its pin."""
    actual = file_digest(path, checksum.kind)
    if actual != checksum.value:
        raise ChecksumError(f"{what}: {checksum.kind} mismatch: expected {checksum.value}, got {actual}")


def local_path(source: str) -> Path | None:
    """The local file a source names (plain path or file:// URL), or None for http(s)."""
    parts = urllib.parse.urlsplit(source)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if len(parts.scheme) > 1:   # one letter is a Windows drive
        raise DownloadError(f"unsupported source {source!r}: use an http(s):// or file:// URL or a local path")
    return Path(source).expanduser()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch(source: str, dest: Path, checksum: Checksum | None, *, retries: int = 5, backoff_s: float = 1.0,
          timeout_s: float = 60.0, desc: str | None = None) -> Path:
    """Obtain `source` (http(s) URL, file:// URL or local path) as `dest`, verified by `checksum`.
    `checksum=None` means the caller knows nothing is published to verify against: the file is
    then accepted once it is complete (every byte of its Content-Length)."""
    dest = Path(dest)
    if dest.is_file() and (checksum is None or file_digest(dest, checksum.kind) == checksum.value):
        log.info("%s already present and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    local = local_path(source)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"source file not found: {local}")
        shutil.copyfile(local, part)
        _verified_or_removed(part, checksum, str(local))
    else:
        for attempt in (1, 2):
            _download(source, part, retries, backoff_s, timeout_s, desc or dest.name)
            try:
                _verified_or_removed(part, checksum, source)
                break
            except ChecksumError as e:
                if attempt == 2:
                    raise ChecksumError(f"{e} (fetched twice; the server's file is not the pinned one)") from None
                log.warning("%s; fetching it again from zero", e)
    os.replace(part, dest)
    return dest


def _verified_or_removed(part: Path, checksum: Checksum | None, what: str) -> None:
    if checksum is None:
        return
    try:
        verify_file(part, checksum, what)
    except ChecksumError:
        part.unlink()
        raise


class _ShortBody(Exception):
    pass


def _download(url: str, part: Path, retries: int, backoff_s: float, timeout_s: float, desc: str) -> None:
    """Fill `part` with the whole body of `url`, resuming after failures. A failure that left the
    part no longer than before counts against `retries`; one that made progress does not."""
    failures, longest = 0, _size(part)
    while True:
        try:
            _download_once(url, part, timeout_s, desc)
            return
        except urllib.error.HTTPError as e:
            if e.code == 416 and _range_done(e, part):
                return
            if e.code == 416:
                part.unlink(missing_ok=True)
            elif e.code < 500 and e.code != 429:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
            error: Exception = e
        except urllib.error.URLError as e:
            error = e
        except (ConnectionError, TimeoutError, http.client.HTTPException, _ShortBody) as e:
            error = e
        if _size(part) > longest:
            failures, longest = 0, _size(part)
        failures += 1
        if failures > retries:
            raise DownloadError(_final_message(url, error, failures, part)) from None
        delay = min(backoff_s * 2 ** (failures - 1), MAX_DELAY_S)
        log.warning("%s: %s; retry %d of %d in %.1f s", url, _reason(error), failures, retries, delay)
        time.sleep(delay)


def _download_once(url: str, part: Path, timeout_s: float, desc: str) -> None:
    have = _size(part)
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as resp:
        if resp.status == 206:
            if not have or _range_start(resp.headers.get("Content-Range")) != have:
                part.unlink(missing_ok=True)
                raise _ShortBody(f"server sent a range that was not asked for "
                                 f"({resp.headers.get('Content-Range')}, asked from byte {have})")
            mode = "ab"
        else:
            if have:
                log.info("%s: server did not resume at byte %d; restarting from zero", url, have)
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        got = have
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=desc, leave=False, disable=None) as bar:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got < total:
        raise _ShortBody(f"connection closed after {got} of {total} bytes")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-", content_range or "")
    return int(m[1]) if m else None


def _range_done(e: urllib.error.HTTPError, part: Path) -> bool:
    """A 416 answer to `Range: bytes=N-` whose `Content-Range: bytes */N` says the part is whole."""
    m = re.fullmatch(r"bytes \*/(\d+)", (e.headers or {}).get("Content-Range", "") or "")
    return bool(m) and part.exists() and int(m[1]) == _size(part)


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _final_message(url: str, error: Exception, attempts: int, part: Path) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        host = urllib.parse.urlsplit(url).netloc
        return (f"cannot reach {host} for {url} ({_reason(error)}): this machine seems offline or the host is "
                f"unreachable. Fetch the file elsewhere and pass its local path (or a file:// URL) as the "
                f"source instead")
    kept = f"; {part} keeps the {_size(part)} bytes received, a new run resumes it" if _size(part) else ""
    return f"{url}: failed {attempts} times in a row, last: {_reason(error)}{kept}"
