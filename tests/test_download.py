"""Downloads, archive extraction and dataset orchestration, against a local HTTP server (no internet).

    .venv/bin/pytest -q tests/test_download.py
"""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stages.cli import app
from geodistill.data import fetch as fetch_module
from geodistill.data.archives import ArchiveError, UnsafeArchiveError, extract
from geodistill.data.download import DownloadError, download_dataset, load_manifest, parse_sources
from geodistill.data.fetch import Checksum, ChecksumError, fetch, file_digest, git_blob_id

PAYLOAD = bytes(range(256)) * 1200          # 307,200 bytes
FAST = dict(retries=3, backoff_s=0.001, timeout_s=5.0)


def sha256(data: bytes) -> Checksum:
    return Checksum("sha256", hashlib.sha256(data).hexdigest())


# --- a local server that misbehaves on request ------------------------------------------------

class Server:
    """Serves `files` by path. Per path, once: `drop` after N bytes, `corrupt`, `fail_500`;
    always: `ignore_range`, `always_corrupt`. Records (path, Range header) of every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.always_corrupt: set[str] = set()
        self.fail_500: set[str] = set()
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            path, rng = self.path, self.headers.get("Range")
            server.requests.append((path, rng))
            if path in server.fail_500:
                server.fail_500.discard(path)
                return self._reply(500, b"boom")
            if path not in server.files:
                return self._reply(404, b"not found")
            data = server.files[path]
            if path in server.corrupt or path in server.always_corrupt:
                server.corrupt.discard(path)
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            if rng and not server.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    return self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            body = data[start:]
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
            cut = server.drop.pop(path, None)
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if cut is not None:            # send part of the body, then hang up
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _reply(self, code: int, body: bytes, headers: dict | None = None):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- fetch --------------------------------------------------------------------------------------

def test_plain_download_verifies_and_names_the_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.drop["/a.bin"] = 100_000
    dest = fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", None), ("/a.bin", "bytes=100000-")]


def test_a_part_left_by_an_earlier_run_is_resumed(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:5000])
    fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", "bytes=5000-")]


def test_a_whole_part_answered_416_is_verified_not_refetched(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", f"bytes={len(PAYLOAD)}-")]


def test_a_server_ignoring_range_restarts_from_zero_and_ends_right(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.ignore_range = True
    server.drop["/a.bin"] = 70_000
    (tmp_path / "b.bin.part").write_bytes(b"garbage" * 10)       # a stale part: must not be kept
    fetch(server.url("/a.bin"), tmp_path / "b.bin", sha256(PAYLOAD), **FAST)
    assert (tmp_path / "b.bin").read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=70-", "bytes=70000-"]


def test_corrupt_bytes_are_detected_and_fetched_again(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.corrupt.add("/a.bin")
    fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", None), ("/a.bin", None)]     # the refetch starts at zero


def test_a_persistent_mismatch_raises_naming_url_and_both_hashes(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.always_corrupt.add("/a.bin")
    pin = sha256(PAYLOAD)
    with pytest.raises(ChecksumError) as e:
        fetch(server.url("/a.bin"), tmp_path / "a.bin", pin, **FAST)
    bad = bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]
    assert server.url("/a.bin") in str(e.value)
    assert pin.value in str(e.value) and hashlib.sha256(bad).hexdigest() in str(e.value)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_the_part_gets_its_final_name_only_after_verification(server, tmp_path, monkeypatch):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    seen = []
    real = fetch_module.file_digest

    def spy(path, kind):
        seen.append((Path(path).name, dest.exists()))
        return real(path, kind)
    monkeypatch.setattr(fetch_module, "file_digest", spy)
    fetch(server.url("/a.bin"), dest, sha256(PAYLOAD), **FAST)
    assert seen == [("a.bin.part", False)]
    assert dest.read_bytes() == PAYLOAD


def test_a_500_answer_is_retried(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail_500.add("/a.bin")
    fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_a_404_is_not_retried(server, tmp_path):
    with pytest.raises(fetch_module.DownloadError, match="HTTP 404"):
        fetch(server.url("/missing"), tmp_path / "m", sha256(b""), **FAST)
    assert len(server.requests) == 1


def test_an_unreachable_host_says_offline_and_how_to_pass_a_local_file(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/labels.txt"
    with pytest.raises(fetch_module.DownloadError) as e:
        fetch(url, tmp_path / "labels.txt", sha256(b"x"), retries=1, backoff_s=0.001)
    message = str(e.value)
    assert url in message and "offline" in message and "local path" in message
    assert "\n" not in message
    assert not (tmp_path / "labels.txt").exists()


def test_a_present_file_with_the_right_hash_is_not_fetched(server, tmp_path):
    (tmp_path / "a.bin").write_bytes(PAYLOAD)
    fetch(server.url("/a.bin"), tmp_path / "a.bin", sha256(PAYLOAD), **FAST)
    assert server.requests == []


def test_local_sources_path_and_file_url_are_copied_and_verified(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello\n")
    fetch(str(src), tmp_path / "out" / "a.txt", sha256(b"hello\n"))
    fetch(src.as_uri(), tmp_path / "out" / "b.txt", Checksum("git_blob", git_blob_id(b"hello\n")))
    assert (tmp_path / "out" / "a.txt").read_bytes() == (tmp_path / "out" / "b.txt").read_bytes() == b"hello\n"
    with pytest.raises(ChecksumError, match=str(src)):
        fetch(str(src), tmp_path / "out" / "c.txt", sha256(b"other"))
    assert not (tmp_path / "out" / "c.txt").exists() and not (tmp_path / "out" / "c.txt.part").exists()


def test_git_blob_id_equals_git_hash_object(tmp_path):
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"panorama.jpg satellite_1.0_2.0.png 1.0 -2.0\n" * 3)
    if shutil.which("git"):
        expected = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True,
                                  check=True).stdout.strip()
    else:  # checked once with `git hash-object`
        expected = "b481126f40a2a3da391efd854c8a2d5a93911e3c"
    assert git_blob_id(sample.read_bytes()) == expected
    assert file_digest(sample, "git_blob") == expected
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"   # git's empty blob


def test_a_null_or_malformed_pin_is_refused():
    with pytest.raises(ChecksumError, match="null"):
        Checksum("git_blob", None)
    with pytest.raises(ChecksumError, match="40 hex"):
        Checksum("git_blob", "abc")


# --- archives -----------------------------------------------------------------------------------

def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    return path


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


GOOD = {"City/panorama/a,1.0,2.0,.jpg": b"jpeg-a", "City/satellite/s.png": b"png-s", "City/notes.txt": b"n"}


@pytest.mark.parametrize("bad", [
    ("zip", {"../evil.txt": b"x"}, None),
    ("zip", {"City/../../evil.txt": b"x"}, None),
    ("zip", {"/tmp/evil_abs.txt": b"x"}, None),
    ("zip", {}, {"City/out": "../../outside"}),
    ("tar", [("../evil.txt", b"x")]),
    ("tar", [("/tmp/evil_abs.txt", b"x")]),
    ("tar", [link("City/out", "../../outside")]),
    ("tar", [link("City/etc", "/etc")]),
    ("tar", [link("x", "."), link("y", "x/..")]),                       # escapes only through a chain
    ("tar", [link("City/dir", "."), ("City/dir/evil.txt", b"x")]),      # written through a link
    ("tar", [link("City/hard", "../outside", tarfile.LNKTYPE)]),
    ("tar", [link("City/dev", "", tarfile.CHRTYPE)]),
    ("tar", [link("City/fifo", "", tarfile.FIFOTYPE)]),
], ids=["zip-dotdot", "zip-inner-dotdot", "zip-absolute", "zip-symlink-out", "tar-dotdot", "tar-absolute",
        "tar-symlink-out", "tar-symlink-absolute", "tar-symlink-chain", "tar-under-symlink", "tar-hardlink-out",
        "tar-device", "tar-fifo"])
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, bad):
    outer = tmp_path / "outer"
    root = outer / "root"
    outer.mkdir()
    (outer / "keep.txt").write_text("untouched")
    if bad[0] == "zip":
        archive = make_zip(tmp_path / "bad.zip", {**GOOD, **bad[1]}, bad[2])
    else:
        archive = make_tar(tmp_path / "bad.tar.gz", [*GOOD.items(), *bad[1]])
    before = tree(outer)
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        extract(archive, root, expect=["City/panorama"])
    assert tree(outer) == before                      # nothing inside the root, nothing beside it
    assert not Path("/tmp/evil_abs.txt").exists()


def test_absolute_names_really_are_stored_absolute(tmp_path):
    """Guard for the test above: the archive writers keep a leading '/'."""
    z = make_zip(tmp_path / "a.zip", {"/tmp/evil_abs.txt": b"x"})
    t = make_tar(tmp_path / "a.tar.gz", [("/tmp/evil_abs.txt", b"x")])
    assert zipfile.ZipFile(z).namelist() == ["/tmp/evil_abs.txt"]
    assert tarfile.open(t).getnames() == ["/tmp/evil_abs.txt"]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_good_archives_extract_fully(tmp_path, kind):
    root = tmp_path / "root"
    if kind == "zip":
        archive = make_zip(tmp_path / "good.zip", GOOD)
    else:
        archive = make_tar(tmp_path / "good.tar.gz", [*GOOD.items(), link("City/latest.png", "satellite/s.png"),
                                                      link("City/hard.png", "City/satellite/s.png", tarfile.LNKTYPE)])
    n = extract(archive, root, expect=["City/panorama", "City/satellite"])
    for name, data in GOOD.items():
        assert (root / name).read_bytes() == data
    if kind == "tar.gz":
        assert n == len(GOOD) + 2
        assert (root / "City/latest.png").is_symlink() and (root / "City/latest.png").read_bytes() == b"png-s"
        assert (root / "City/hard.png").read_bytes() == b"png-s"
    assert not [p for p in root.iterdir() if p.name.endswith(".partial")]


def test_a_missing_expected_path_is_refused_before_writing(tmp_path):
    archive = make_zip(tmp_path / "good.zip", GOOD)
    with pytest.raises(ArchiveError, match="holds no Other/panorama.*City"):
        extract(archive, tmp_path / "root", expect=["Other/panorama"])
    assert not (tmp_path / "root").exists()


def test_an_interrupted_extraction_leaves_nothing_that_looks_extracted(tmp_path, monkeypatch):
    from geodistill.data import archives
    archive = make_zip(tmp_path / "good.zip", GOOD)
    root = tmp_path / "root"
    calls, real_copy = [], shutil.copyfileobj

    def copy_then_die(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        real_copy(src, dst, length)
    monkeypatch.setattr(archives.shutil, "copyfileobj", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        extract(archive, root)
    assert tree(root) == []
    monkeypatch.undo()
    extract(archive, root)
    assert all((root / name).read_bytes() == data for name, data in GOOD.items())


def test_extracting_a_second_archive_merges_into_the_root(tmp_path):
    root = tmp_path / "root"
    extract(make_zip(tmp_path / "a.zip", {"A/panorama/x.jpg": b"a"}), root)
    extract(make_zip(tmp_path / "b.zip", {"B/panorama/y.jpg": b"b", "A/extra.txt": b"e"}), root)
    assert tree(root) == ["A", "A/extra.txt", "A/panorama", "A/panorama/x.jpg", "B", "B/panorama",
                          "B/panorama/y.jpg"]


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_truncated_archive_is_refused_and_nothing_is_extracted(tmp_path, kind):
    many = {f"City/panorama/{i}.jpg": bytes(range(256)) * 40 for i in range(20)}
    whole = (make_zip(tmp_path / "a.zip", many) if kind == "zip" else make_tar(tmp_path / "a.tar.gz", list(many.items())))
    cut = tmp_path / f"cut{''.join(whole.suffixes)}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        extract(cut, root, ["City/panorama"])
    assert tree(root) == []


def test_not_an_archive_is_a_clear_error(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"just text")
    with pytest.raises(ArchiveError, match="not a zip or tar"):
        extract(tmp_path / "x.zip", tmp_path / "root")


# --- download_dataset and the CLI ----------------------------------------------------------------

LABELS = b"pano,1.0,2.0,.jpg satellite_1.0_2.0.png 1.0 2.0\n"
NOTES = b"made by the test\n"


def write_manifest(path: Path, server: Server, label_pin: str | None, archive_sha: str | None) -> Path:
    pin = "null" if label_pin is None else label_pin
    sha = "null" if archive_sha is None else archive_sha
    path.write_text(f"""
toy:
  obtain: toy data comes from the test
  github: {{repository: owner/repo, revision: null}}
  files:
    notes/README.txt: {{url: "{server.url('/README.txt')}", git_blob: {git_blob_id(NOTES)}}}
    splits__corrected/City/labels.txt: {{url: "{server.url('/labels.txt')}", git_blob: {pin}}}
  archives:
    City: {{expect: [City/panorama], url: "{server.url('/City.zip')}", sha256: {sha}}}
    Local: {{expect: [Local/panorama], unverified: "made by the test"}}
    Extra: {{expect: [Extra], unverified: "optional", required: false}}
""")
    return path


@pytest.fixture
def toy(server, tmp_path):
    zip_bytes = make_zip(tmp_path / "City.zip", GOOD).read_bytes()
    server.files["/labels.txt"] = LABELS
    server.files["/README.txt"] = NOTES
    server.files["/City.zip"] = zip_bytes
    local = make_zip(tmp_path / "Local.zip", {"Local/panorama/p.jpg": b"p"})
    manifest = write_manifest(tmp_path / "sources.yaml", server, git_blob_id(LABELS),
                              hashlib.sha256(zip_bytes).hexdigest())
    return manifest, local


def test_download_dataset_fetches_extracts_and_stamps_then_does_nothing(server, tmp_path, toy):
    manifest, local = toy
    root = tmp_path / "data"
    result = download_dataset("toy", root, {"Local": str(local)}, manifest=manifest, **FAST)
    assert (root / "splits__corrected/City/labels.txt").read_bytes() == LABELS
    assert (root / "notes/README.txt").read_bytes() == NOTES and not (root / ".download/incoming").exists()
    assert (root / "City/panorama/a,1.0,2.0,.jpg").read_bytes() == b"jpeg-a"
    assert (root / "Local/panorama/p.jpg").read_bytes() == b"p"
    assert result["Extra"].startswith("skipped")
    assert (root / ".download/toy.complete.json").is_file()
    assert local.is_file()                                          # a local archive is used in place
    n = len(server.requests)
    again = download_dataset("toy", root, {}, manifest=manifest, **FAST)
    assert len(server.requests) == n                                # nothing fetched again
    assert again["City"] == again["Local"] == "already extracted"
    assert again["splits__corrected/City/labels.txt"] == "present, verified"


def test_a_null_pin_is_refused_before_any_request(server, tmp_path, toy):
    _, local = toy
    manifest = write_manifest(tmp_path / "nulls.yaml", server, None, None)
    with pytest.raises(DownloadError) as e:
        download_dataset("toy", tmp_path / "data", {"Local": str(local)}, manifest=manifest, **FAST)
    message = str(e.value)
    assert "git_blob is null" in message and "sha256 is null" in message and str(manifest) in message
    assert server.requests == [] and not (tmp_path / "data").exists()


def test_missing_and_unknown_sources_are_listed_together(server, tmp_path, toy):
    manifest, _ = toy
    with pytest.raises(DownloadError) as e:
        download_dataset("toy", tmp_path / "data", {"Bogus": "x"}, manifest=manifest, **FAST)
    message = str(e.value)
    assert "unknown source name 'Bogus'" in message and "--source Local=PATH_OR_URL" in message
    assert "toy data comes from the test" in message and server.requests == []
    with pytest.raises(DownloadError) as e:
        download_dataset("toy", tmp_path / "data", {"City": str(tmp_path / "nope.zip"), "Local": "ftp://h/x.zip"},
                         manifest=manifest, **FAST)
    assert f"City: source file not found: {tmp_path / 'nope.zip'}" in str(e.value)
    assert "Local: unsupported source 'ftp://h/x.zip'" in str(e.value)
    assert server.requests == [] and not (tmp_path / "data").exists()


def test_a_file_that_does_not_match_its_pin_is_refused_and_nothing_is_left_behind(server, tmp_path, toy):
    manifest, local = toy
    server.always_corrupt.add("/labels.txt")                          # README.txt is fine and comes first
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as e:
        download_dataset("toy", root, {"Local": str(local)}, manifest=manifest, **FAST)
    assert str(e.value).startswith("splits__corrected/City/labels.txt: refused: ") and "git_blob mismatch" in str(e.value)
    assert not root.exists()                                          # README.txt discarded too, folders removed
    root.mkdir()
    (root / "mine.txt").write_text("the user's")
    with pytest.raises(DownloadError, match="labels.txt: refused"):
        download_dataset("toy", root, {"Local": str(local)}, manifest=manifest, **FAST)
    assert tree(root) == ["mine.txt"]                                 # a root that existed keeps what it had


def test_the_packaged_manifest_pins_every_public_file_at_a_commit(tmp_path):
    for name, repository, n in (("vigor", "tudelft-iv/SliceMatch", 12), ("kitti", "shiyujiao/HighlyAccurate", 3)):
        items, obtain = load_manifest(name)
        files = [it for it in items if it.kind == "file"]
        assert len(files) == n and obtain
        for it in files:
            assert it.unpinned is None and it.pin.kind == "git_blob", it.name
            assert re.fullmatch(rf"https://raw\.githubusercontent\.com/{repository}/[0-9a-f]{{40}}/\S+", it.url), it.url
    names = {it.name for it in load_manifest("vigor")[0]}
    assert {"Chicago", "NewYork", "SanFrancisco", "Seattle"} <= names
    assert "splits__corrected/Chicago/pano_label_balanced__corrected.txt" in names
    with pytest.raises(DownloadError) as e:                           # refused before any request: no archives
        download_dataset("vigor", tmp_path / "vigor", {})
    assert "Chicago: no source (supplied by the user); pass --source Chicago=PATH_OR_URL" in str(e.value)
    assert "null" not in str(e.value) and not (tmp_path / "vigor").exists()


def test_parse_sources():
    assert parse_sources(["a=/x=y", "b=http://h/f"]) == {"a": "/x=y", "b": "http://h/f"}
    with pytest.raises(DownloadError, match="NAME=PATH_OR_URL"):
        parse_sources(["nope"])
    with pytest.raises(DownloadError, match="twice"):
        parse_sources(["a=1", "a=2"])


def test_cli_download(server, tmp_path, toy):
    manifest, local = toy
    runner = CliRunner()
    bad = runner.invoke(app, ["download", "toy", "--root", str(tmp_path / "d"), "--manifest", str(manifest),
                              "--source", "Bogus=x"])
    assert bad.exit_code == 2 and "unknown source name" in bad.output
    ok = runner.invoke(app, ["download", "toy", "--root", str(tmp_path / "d"), "--manifest", str(manifest),
                             "--source", f"Local={local}", "--retries", "1"])
    assert ok.exit_code == 0, ok.output
    assert "toy complete" in ok.output and (tmp_path / "d/Local/panorama/p.jpg").is_file()
