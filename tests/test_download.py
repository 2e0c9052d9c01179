"""`deepchrome download` end to end against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from deepchrome.data import read_release_csv
from tests.cli import run_cli
from tests.conftest import EXAMPLE
from tests.tree import hidden, snapshot


def build_tarball(extra: tarfile.TarInfo | None = None) -> bytes:
    """Two cells of the bundled example in the release layout as data.tar.gz (the plain one built once)."""
    return _build_tarball(extra) if extra is not None else _plain_tarball()


@functools.cache
def _plain_tarball() -> bytes:
    return _build_tarball(None)


def _build_tarball(extra: tarfile.TarInfo | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for cell in ("S01", "S02"):
            for split in ("train", "valid", "test"):
                tar.add(EXAMPLE / cell / "classification" / f"{split}.csv", f"data/{cell}/classification/{split}.csv")
        tar.add(EXAMPLE / "expression" / "S01.csv", "data/README_extra.csv")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isfile() else None)
    return buffer.getvalue()


class Server:
    """Serves /api/records/2652278 and /files/data.tar.gz with Range support and fault injection."""

    def __init__(self, archive: bytes, checksum: str | None = None, record: object = None):
        self.archive = archive
        self.checksum = checksum or "md5:" + hashlib.md5(archive).hexdigest()
        self.record = record  # metadata to serve instead of the well-formed record
        self.cut_after: int | None = None  # close the connection after this many bytes, once
        self.ranges: list[str | None] = []
        self.paths: list[str] = []  # every request, in order
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.paths.append(self.path)
                if self.path == "/api/records/2652278":
                    url = f"http://127.0.0.1:{outer.port}/files/data.tar.gz"
                    body = json.dumps(
                        outer.record
                        if outer.record is not None
                        else {
                            "files": [
                                {
                                    "key": "data.tar.gz",
                                    "size": len(outer.archive),
                                    "checksum": outer.checksum,
                                    "links": {"self": url},
                                }
                            ]
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path != "/files/data.tar.gz":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                outer.ranges.append(header)
                start = int(header.split("=")[1].split("-")[0]) if header else 0
                if start >= len(outer.archive):  # as real servers do: nothing to send from there
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(outer.archive)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = outer.archive[start:]
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[: outer.cut_after])
                    outer.cut_after = None
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.record_url = f"http://127.0.0.1:{self.port}/api/records/2652278"
        self.archive_url = f"http://127.0.0.1:{self.port}/files/data.tar.gz"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def download(server, out, *extra, check=True):
    return run_cli(
        "download", "--out", str(out), "--record-url", server.record_url, "--no-progress", *extra, check=check
    )


def test_clean_download_extracts_and_caches(tmp_path):
    with Server(build_tarball()) as server:
        result = download(server, tmp_path / "release")
    assert "2 cells in" in result.stdout
    assert sorted(p.name for p in (tmp_path / "release").iterdir()) == ["S01", "S02"]
    got = read_release_csv(tmp_path / "release/S02/classification/valid.csv")
    want = read_release_csv(EXAMPLE / "S02/classification/valid.csv")
    assert np.array_equal(got.signals, want.signals)
    assert run_cli("data", "check", str(tmp_path / "release")).returncode == 0


def test_selected_cells_only(tmp_path):
    with Server(build_tarball()) as server:
        download(server, tmp_path / "release", "--cells", "S01")
        missing = download(server, tmp_path / "other", "--cells", "E999", check=False)
    assert [p.name for p in (tmp_path / "release").iterdir()] == ["S01"]
    assert missing.returncode == 2 and "cell(s) E999 not in data.tar.gz (2 cells found)" in missing.stderr


def test_interrupted_download_resumes(tmp_path):
    archive = build_tarball()
    with Server(archive) as server:
        server.cut_after = len(archive) // 3
        first = download(server, tmp_path / "release", check=False)
        assert first.returncode == 2 and "run the same command again to resume" in first.stderr
        part = tmp_path / "release/.deepchrome-download/data.tar.gz.part"
        assert part.stat().st_size == len(archive) // 3
        download(server, tmp_path / "release")
    assert server.ranges == [None, f"bytes={len(archive) // 3}-"]
    assert (tmp_path / "release/S01/classification/test.csv").is_file()
    assert not (tmp_path / "release/.deepchrome-download").exists()


def test_checksum_mismatch_leaves_nothing(tmp_path):
    with Server(build_tarball(), checksum="md5:" + "0" * 32) as server:
        result = download(server, tmp_path / "release", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "checksum mismatch for data.tar.gz: expected md5 0000" in result.stderr
    assert not (tmp_path / "release").exists()


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink"])
def test_malicious_members_are_refused(tmp_path, kind):
    if kind == "symlink":
        member = tarfile.TarInfo("data/S01/classification/link.csv")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member = tarfile.TarInfo("../escape" if kind == "escape" else "/tmp/absolute-escape")
        member.size = 3
    with Server(build_tarball(member)) as server:
        result = download(server, tmp_path / "release", check=False)
    assert result.returncode == 2
    assert f"refusing member {member.name!r}" in result.stderr
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "release").exists()


def _refused(result, message):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_upper_case_checksum_is_accepted(tmp_path):
    archive = build_tarball()
    with Server(archive) as server:
        checksum = "MD5:" + hashlib.md5(archive).hexdigest().upper()
        result = download(server, tmp_path / "release", "--url", server.archive_url, "--checksum", checksum)
    assert "2 cells in" in result.stdout and (tmp_path / "release/S01/classification/train.csv").is_file()


@pytest.mark.parametrize(
    ("checksum", "message"),
    [
        ("md5:abc", "--checksum 'md5:abc': a md5 checksum is 32 hexadecimal digits, got 'abc'"),
        ("md5:" + "g" * 32, "a md5 checksum is 32 hexadecimal digits"),
        ("sha256:" + "0" * 32, "a sha256 checksum is 64 hexadecimal digits"),
        ("crc32:0000", "--checksum 'crc32:0000': unknown hash type 'crc32' (use blake2b, blake2s, md5"),
        ("0" * 32, "expected ALGORITHM:HEX, e.g. md5:<32 hex digits>"),
    ],
)
def test_bad_checksum_is_refused_before_any_network(tmp_path, checksum, message):
    with Server(build_tarball()) as server:
        result = download(
            server, tmp_path / "release", "--url", server.archive_url, "--checksum", checksum, check=False
        )
    _refused(result, message)
    assert server.paths == [] and not (tmp_path / "release").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([1, 2], "metadata is a JSON list, expected an object"),
        ({"hits": {}}, "missing field 'files' (a list, or 'files.entries')"),
        ({"files": [{"size": 3}]}, "files[0] has no field 'key' (the file name)"),
        ({"files": [{"key": "data.tar.gz", "checksum": "md5:" + "0" * 32}]}, "file data.tar.gz has no download link"),
        ({"files": [{"key": "data.tar.gz", "links": {"self": "http://127.0.0.1:9/x"}}]}, "has no field 'checksum'"),
        (
            {"files": [{"key": "data.tar.gz", "links": {"self": "http://x/"}, "checksum": "md5:1", "size": 3}]},
            "file data.tar.gz has checksum 'md5:1': a md5 checksum is 32 hexadecimal digits",
        ),
        (
            {"files": {"entries": {"data.tar.gz": {"key": "data.tar.gz", "links": {"content": "http://x/"},
                                                   "checksum": "md5:" + "0" * 32, "size": "big"}}}},
            "file data.tar.gz: field 'size' is 'big', expected a number of bytes",
        ),
    ],
)  # fmt: skip
def test_record_of_the_wrong_shape(tmp_path, record, message):
    with Server(build_tarball(), record=record) as server:
        result = download(server, tmp_path / "release", check=False)
    _refused(result, f"record {server.record_url}")
    assert message in result.stderr
    assert server.paths == ["/api/records/2652278"] and not (tmp_path / "release").exists()


@pytest.mark.parametrize("leftover", ["complete", "oversized", "corrupted"])
def test_url_resume_answered_416(tmp_path, leftover):
    archive = build_tarball()
    part = tmp_path / "release/.deepchrome-download/data.tar.gz.part"
    part.parent.mkdir(parents=True)
    stale = {"complete": archive, "oversized": archive + b"junk", "corrupted": b"x" * len(archive)}[leftover]
    part.write_bytes(stale)
    with Server(archive) as server:
        checksum = "md5:" + hashlib.md5(archive).hexdigest()
        result = download(server, tmp_path / "release", "--url", server.archive_url, "--checksum", checksum)
    assert "2 cells in" in result.stdout
    restart = [] if leftover == "complete" else [None]
    assert server.ranges == [f"bytes={len(stale)}-", *restart]
    assert not (tmp_path / "release/.deepchrome-download").exists()


def test_record_download_with_oversized_part_starts_again(tmp_path):
    archive = build_tarball()
    part = tmp_path / "release/.deepchrome-download/data.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive + b"junk")
    with Server(archive) as server:
        download(server, tmp_path / "release")
    assert server.ranges == [None]


@pytest.mark.parametrize("existing", [False, True])
def test_unreachable_url_leaves_nothing(tmp_path, existing):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "release"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    result = run_cli(
        "download", "--out", str(out), "--url", f"http://127.0.0.1:{port}/data.tar.gz",
        "--checksum", "md5:" + "0" * 32, "--no-progress", check=False,
    )  # fmt: skip
    _refused(result, f"cannot reach http://127.0.0.1:{port}/data.tar.gz: Connection refused")
    assert snapshot(out) == before and (out.exists() == existing)


def test_interrupted_first_byte_leaves_nothing_but_a_part_worth_resuming(tmp_path):
    archive = build_tarball()
    with Server(archive) as server:
        server.cut_after = 0
        result = download(server, tmp_path / "release", check=False)
    _refused(result, "run the same command again to resume")
    assert not (tmp_path / "release").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cells", "../victim"), "--cells '../victim': a cell name must be a plain name"),
        (("--cells", ""), "--cells '': a cell name must not be empty"),
        (("--cells",), "--cells given without cell names"),
        (("--file", "../data.tar.gz"), "--file '../data.tar.gz': a file name must be a plain name"),
    ],
)
def test_names_are_checked_before_any_network(tmp_path, args, message):
    with Server(build_tarball()) as server:
        result = download(server, tmp_path / "release", *args, check=False)
    _refused(result, message)
    assert server.paths == [] and not (tmp_path / "release").exists() and not (tmp_path / "victim").exists()


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "release").write_text("x")
    with Server(build_tarball()) as server:
        result = download(server, tmp_path / "release", check=False)
    _refused(result, f"--out {tmp_path}/release: is a file, expected a folder")
    assert server.paths == [] and (tmp_path / "release").read_text() == "x"


def test_existing_cell_folder_keeps_other_files_and_edited_splits_need_overwrite(tmp_path):
    cell = tmp_path / "release" / "S01"
    (cell / "classification").mkdir(parents=True)
    (cell / "notes.txt").write_text("mine")
    (cell / "classification" / "train.csv").write_text("edited")
    before = snapshot(tmp_path / "release")
    with Server(build_tarball()) as server:
        refused = download(server, tmp_path / "release", "--cells", "S01", check=False)
        _refused(
            refused,
            f"{cell}/classification/train.csv already exists and differs from the release "
            "(1 file(s) would be replaced): pass --overwrite to replace them, or choose another --out",
        )
        assert snapshot(tmp_path / "release") == before
        download(server, tmp_path / "release", "--cells", "S01", "--overwrite")
        again = download(server, tmp_path / "release", "--cells", "S01")  # the same content: nothing to refuse
    assert again.returncode == 0
    assert (cell / "notes.txt").read_text() == "mine"
    assert (cell / "classification/train.csv").read_bytes() == (EXAMPLE / "S01/classification/train.csv").read_bytes()
    assert not hidden(tmp_path / "release")


def test_archive_cell_folder_must_be_a_plain_name(tmp_path):
    member = tarfile.TarInfo("data/E 003/classification/train.csv")
    member.size = 3
    with Server(build_tarball(member)) as server:
        result = download(server, tmp_path / "release", check=False)
    _refused(result, "refusing member 'data/E 003/classification/train.csv': cell folder 'E 003' is not a plain name")
    assert not (tmp_path / "release").exists()


def test_disk_full_during_extraction_leaves_nothing(tmp_path, monkeypatch):
    import deepchrome.download as module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(module, "_extract_member", full)
    with Server(build_tarball()) as server:
        result = download(server, tmp_path / "release", check=False)
    _refused(result, f"--out {tmp_path}/release: cannot write there (No space left on device)")
    assert not (tmp_path / "release").exists()
