"""Obtain a real dataset into a root: fetch pinned files, verify, extract archives, stamp completion.

    geodistill download vigor --config params.yaml --root /data/VIGOR     # stage download@vigor
    geodistill download vigor --root data/VIGOR --source Chicago=/data/Chicago.zip \
        --source NewYork=/data/NewYork.zip --source SanFrancisco=... --source Seattle=...

What a dataset needs is data, not code: sources.yaml (next to this file) lists per dataset the
single files (path under the root, source, pin) and the archives (the NAME a user gives a path
for, under params.yaml's data.archives or as `--source NAME=PATH_OR_URL`; the paths they must
hold). Everything is planned before any work: an unknown source name, a missing source or a pin
that is still null is reported together, one line each. Then files already present with the right
hash are kept, the rest fetched (fetch.py: resumable, verified, atomic) into
`<root>/.download/incoming/`, archives extracted safely (archives.py) with a stamp per archive in
`<root>/.download/`, the fetched files moved into place, and `<root>/.download/<dataset>.complete.json`
written last. A file that does not match its pin stops the run and every file the run fetched is
discarded (with the folders it created, when empty): nothing unverified is ever left in the root.
Local archives are used in place (never copied); downloaded ones are kept in `<root>/.download/`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from geodistill.config import read_yaml
from geodistill.data.archives import extract
from geodistill.data.fetch import (Checksum, ChecksumError, DownloadError, fetch, file_digest, local_path,
                                   verify_file)

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("sources.yaml")
STATE_DIR = ".download"
INCOMING = "incoming"                     # under STATE_DIR: fetched files wait here until all are verified
RAW_GITHUB = "https://raw.githubusercontent.com/{repository}/{revision}/{path}"
PINS = ("sha256", "git_blob")
FILE_KEYS = {"url", "github_path", *PINS}
ARCHIVE_KEYS = {"url", "expect", "required", "unverified", *PINS}
DATASET_KEYS = {"obtain", "github", "files", "archives"}


class ManifestError(DownloadError):
    """sources.yaml (or a --manifest file) that is not well formed; the message names file and key."""


@dataclass(frozen=True)
class Item:
    """One thing a dataset needs: a single file (name = path under the root) or an archive."""
    name: str
    kind: str                         # file | archive
    url: str | None                   # default source; None: the user must pass one
    no_url: str                       # why there is no default source (for the error message)
    pin: Checksum | None              # None: see `unpinned` or `unverified`
    unpinned: str | None              # a pin that is null: verification must be refused
    unverified: str | None            # archives only: why nothing can be verified
    expect: tuple[str, ...] = ()
    required: bool = True


def parse_sources(pairs: list[str]) -> dict[str, str]:
    """`NAME=PATH_OR_URL` strings (the CLI's --source) -> {name: source}."""
    out = {}
    for pair in pairs:
        name, sep, source = pair.partition("=")
        if not sep or not name or not source:
            raise DownloadError(f"--source must be NAME=PATH_OR_URL, got {pair!r}")
        if name in out:
            raise DownloadError(f"--source {name} given twice ({out[name]!r} and {source!r})")
        out[name] = source
    return out


def load_manifest(name: str, path: Path | None = None) -> tuple[list[Item], str]:
    """The items of dataset `name` in a sources file, and its `obtain` text."""
    path = Path(path or MANIFEST)
    doc = read_yaml(path, "sources file", ManifestError)
    if not isinstance(doc, dict) or name not in doc:
        known = ", ".join(doc) if isinstance(doc, dict) else "none"
        raise ManifestError(f"{path}: no dataset {name!r} (known: {known})")
    ds = _mapping(doc[name], path, name)
    _no_unknown(ds, DATASET_KEYS, path, name)
    github = _mapping(ds.get("github") or {}, path, f"{name}.github")
    items = [_file_item(f"{name}.files.{dest}", dest, _mapping(spec, path, f"{name}.files.{dest}"), github, path)
             for dest, spec in _mapping(ds.get("files") or {}, path, f"{name}.files").items()]
    items += [_archive_item(f"{name}.archives.{arc}", arc, _mapping(spec, path, f"{name}.archives.{arc}"), path)
              for arc, spec in _mapping(ds.get("archives") or {}, path, f"{name}.archives").items()]
    return items, str(ds.get("obtain") or "")


def download_dataset(name: str, root: Path, sources: dict[str, str] | None = None, *,
                     manifest: Path | None = None, retries: int = 5, backoff_s: float = 1.0,
                     timeout_s: float = 60.0, pass_as: str = "pass --source {name}=PATH_OR_URL") -> dict[str, str]:
    """Fill `root` with dataset `name`; returns {item name: what happened}. Raises DownloadError
    (one line per problem, before any work) or ArchiveError. `pass_as` tells the user how to give
    a source for item {name} (the CLI's --source, or a params key)."""
    root, sources = Path(root), dict(sources or {})
    items, obtain = load_manifest(name, manifest)
    state = root / STATE_DIR
    unknown = sorted(set(sources) - {it.name for it in items})
    problems = [f"unknown source name {n!r} ({pass_as.format(name=n)}); {name} takes: "
                f"{', '.join(it.name for it in items)}" for n in unknown]
    todo, result = [], {}
    for it in items:
        source = sources.get(it.name) or it.url
        if it.kind == "archive" and _stamp_matches(state / f"{it.name}.extracted.json", sources.get(it.name)):
            result[it.name] = "already extracted"
        elif source is None and not it.required:
            result[it.name] = "skipped (optional, no source given)"
        elif it.unpinned:
            problems.append(f"{it.name}: cannot verify it: {it.unpinned}")
        elif it.kind == "file" and (root / it.name).is_file() and _matches(root / it.name, it.pin):
            result[it.name] = "present, verified"
        elif source is None:
            problems.append(f"{it.name}: no source ({it.no_url}); {pass_as.format(name=it.name)}")
        elif (problem := _source_problem(source)) is not None:
            problems.append(f"{it.name}: {problem} ({pass_as.format(name=it.name)})")
        else:
            todo.append((it, source))
    if problems:
        raise DownloadError("\n".join([f"cannot download {name} into {root}:"] + [f"  {p}" for p in problems]
                                      + ([f"  ({obtain})"] if obtain else [])))
    made = [folder for folder in (root, state) if not folder.exists()]
    complete = state / f"{name}.complete.json"
    if todo:
        complete.unlink(missing_ok=True)
    for it, source in todo:
        try:
            result[it.name] = _obtain(it, source, root, state, retries, backoff_s, timeout_s)
        except ChecksumError as e:
            _discard(state / INCOMING, made)
            raise DownloadError(f"{it.name}: refused: {e}; the files this run fetched are discarded") from None
        except DownloadError as e:
            raise DownloadError(f"{it.name}: {e}" + ("" if local_path(source) else
                                f" (or {pass_as.format(name=it.name)} with a local copy)")) from None
    for it, _ in todo:                    # all verified and extracted: the fetched files take their places
        if it.kind == "file":
            (root / it.name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(state / INCOMING / it.name, root / it.name)
    shutil.rmtree(state / INCOMING, ignore_errors=True)
    _write_json(complete, {"dataset": name, "items": result,
                           "sources": {it.name: sources.get(it.name) or it.url for it in items}})
    return result


def _obtain(it: Item, source: str, root: Path, state: Path, retries: int, backoff_s: float,
            timeout_s: float) -> str:
    """One item: a file fetched and verified into `<state>/incoming/` (put in place once every
    item is done), or an archive verified (when pinned) and extracted into `root`."""
    kw = dict(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, desc=it.name)
    if it.kind == "file":
        fetch(source, state / INCOMING / it.name, it.pin, **kw)
        return f"fetched from {source}"
    local = local_path(source)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"archive not found: {local}")
        if it.pin:
            verify_file(local, it.pin, str(local))
        archive = local
    else:
        filename = Path(urllib.parse.urlsplit(source).path).name or it.name
        archive = fetch(source, state / "archives" / filename, it.pin, **kw)
    if it.unverified:
        log.warning("%s: not verified (%s)", it.name, it.unverified)
    stamp = state / f"{it.name}.extracted.json"
    stamp.unlink(missing_ok=True)
    members = extract(archive, root, it.expect)
    _write_json(stamp, {"source": _identity(source), "archive": str(archive),
                        "pin": str(it.pin) if it.pin else None, "members": members})
    return f"extracted {members} members from {source}"


def _discard(incoming: Path, made: list[Path]) -> None:
    """After a pin mismatch: drop every file fetched by this run, and the folders it created
    when nothing else is in them."""
    shutil.rmtree(incoming, ignore_errors=True)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _source_problem(source: str) -> str | None:
    """Why a source cannot be used (unsupported scheme, missing local file), or None."""
    try:
        local = local_path(source)
    except DownloadError as e:
        return str(e)
    if local is not None and not local.is_file():
        return f"source file not found: {local}"
    return None


def _matches(path: Path, pin: Checksum | None) -> bool:
    return pin is not None and file_digest(path, pin.kind) == pin.value


def _identity(source: str) -> str:
    local = local_path(source)
    return str(local.resolve()) if local is not None else source


def _stamp_matches(stamp: Path, source: str | None) -> bool:
    """An archive counts as extracted when its stamp exists and no other source is asked for."""
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text()).get("source")
    except (ValueError, AttributeError):
        return False
    return source is None or _identity(source) == recorded


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# --- reading sources.yaml ---------------------------------------------------------------------

def _mapping(value, path: Path, key: str) -> dict:
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: {key} must be a mapping, got {type(value).__name__}")
    return value


def _no_unknown(spec: dict, allowed: set[str], path: Path, key: str) -> None:
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ManifestError(f"{path}: {key}: unknown key(s) {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})")


def _pin(spec: dict, path: Path, key: str, allow_unverified: bool) -> tuple[Checksum | None, str | None]:
    """(pin, why it is unpinned): exactly one of sha256, git_blob (or, for archives, unverified)."""
    given = [k for k in PINS if k in spec] + (["unverified"] if allow_unverified and "unverified" in spec else [])
    if len(given) != 1:
        choices = "sha256, git_blob" + (" or unverified" if allow_unverified else "")
        raise ManifestError(f"{path}: {key}: needs exactly one of {choices}, got {', '.join(given) or 'none'}")
    kind = given[0]
    if kind == "unverified":
        if not str(spec["unverified"] or "").strip():
            raise ManifestError(f"{path}: {key}.unverified must say why nothing can be verified")
        return None, None
    if spec[kind] is None:
        return None, f"its {kind} is null in {path} (not pinned yet: fill it from the source)"
    try:
        return Checksum(kind, spec[kind]), None
    except DownloadError as e:
        raise ManifestError(f"{path}: {key}.{kind}: {e}") from None


def _file_item(key: str, dest: str, spec: dict, github: dict, path: Path) -> Item:
    _no_unknown(spec, FILE_KEYS, path, key)
    if Path(dest).is_absolute() or ".." in Path(dest).parts:
        raise ManifestError(f"{path}: {key}: a file's key must be a relative path under the root")
    pin, unpinned = _pin(spec, path, key, allow_unverified=False)
    url, no_url = spec.get("url"), f"{key}.url is null"
    if "github_path" in spec:
        if "url" in spec:
            raise ManifestError(f"{path}: {key}: give url or github_path, not both")
        url, no_url = _github_url(spec["github_path"], github, path, key)
    return Item(dest, "file", url, no_url, pin, unpinned, None)


def _github_url(github_path: str | None, github: dict, path: Path, key: str) -> tuple[str | None, str]:
    dataset = key.split(".")[0]
    if not github.get("repository"):
        raise ManifestError(f"{path}: {key}.github_path needs {dataset}.github.repository")
    if github_path is None:
        return None, f"{key}.github_path is null (not known yet)"
    if github.get("revision") is None:
        return None, f"{dataset}.github.revision is null (no pinned commit of {github['repository']} yet)"
    return RAW_GITHUB.format(repository=github["repository"], revision=github["revision"],
                             path=urllib.parse.quote(github_path)), ""


def _archive_item(key: str, name: str, spec: dict, path: Path) -> Item:
    _no_unknown(spec, ARCHIVE_KEYS, path, key)
    pin, unpinned = _pin(spec, path, key, allow_unverified=True)
    expect = spec.get("expect")
    if not isinstance(expect, list) or not expect or not all(isinstance(e, str) and e for e in expect):
        raise ManifestError(f"{path}: {key}.expect must be a non-empty list of paths the archive holds")
    required = spec.get("required", True)
    if not isinstance(required, bool):
        raise ManifestError(f"{path}: {key}.required must be true or false, got {required!r}")
    return Item(name, "archive", spec.get("url"), "supplied by the user", pin, unpinned,
                spec.get("unverified"), tuple(expect), required)
