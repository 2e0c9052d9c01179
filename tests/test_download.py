"""`deepchrome download` end to end against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from deepchrome.data import read_release_csv
from tests.cli import run_cli


def build_tarball(roadmap, extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for cell in ("E003", "E123"):
            for split in ("train", "valid", "test"):
                tar.add(roadmap / cell / "classification" / f"{split}.csv", f"data/{cell}/classification/{split}.csv")
        tar.add(roadmap / "expression" / "E003.csv", "data/README_extra.csv")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isfile() else None)
    return buffer.getvalue()


class Server:
    """Serves /api/records/2652278 and /files/data.tar.gz with Range support and fault injection."""

    def __init__(self, archive: bytes, checksum: str | None = None):
        self.archive = archive
        self.checksum = checksum or "md5:" + hashlib.md5(archive).hexdigest()
        self.cut_after: int | None = None  # close the connection after this many bytes, once
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/api/records/2652278":
                    url = f"http://127.0.0.1:{outer.port}/files/data.tar.gz"
                    body = json.dumps(
                        {
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
        self.record = f"http://127.0.0.1:{self.port}/api/records/2652278"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def download(server, out, *extra, check=True):
    return run_cli("download", "--out", str(out), "--record-url", server.record, "--no-progress", *extra, check=check)


def test_clean_download_extracts_and_caches(roadmap, tmp_path):
    with Server(build_tarball(roadmap)) as server:
        result = download(server, tmp_path / "release")
    assert "2 cells in" in result.stdout
    assert sorted(p.name for p in (tmp_path / "release").iterdir()) == ["E003", "E123"]
    got = read_release_csv(tmp_path / "release/E123/classification/valid.csv")
    want = read_release_csv(roadmap / "E123/classification/valid.csv")
    assert np.array_equal(got.signals, want.signals)
    assert run_cli("data", "check", str(tmp_path / "release")).returncode == 0


def test_selected_cells_only(roadmap, tmp_path):
    with Server(build_tarball(roadmap)) as server:
        download(server, tmp_path / "release", "--cells", "E003")
        missing = download(server, tmp_path / "other", "--cells", "E999", check=False)
    assert [p.name for p in (tmp_path / "release").iterdir()] == ["E003"]
    assert missing.returncode == 2 and "cell(s) E999 not in data.tar.gz (2 cells found)" in missing.stderr


def test_interrupted_download_resumes(roadmap, tmp_path):
    archive = build_tarball(roadmap)
    with Server(archive) as server:
        server.cut_after = len(archive) // 3
        first = download(server, tmp_path / "release", check=False)
        assert first.returncode == 2 and "run the same command again to resume" in first.stderr
        part = tmp_path / "release/.deepchrome-download/data.tar.gz.part"
        assert part.stat().st_size == len(archive) // 3
        download(server, tmp_path / "release")
    assert server.ranges == [None, f"bytes={len(archive) // 3}-"]
    assert (tmp_path / "release/E003/classification/test.csv").is_file()
    assert not (tmp_path / "release/.deepchrome-download").exists()


def test_checksum_mismatch_leaves_nothing(roadmap, tmp_path):
    with Server(build_tarball(roadmap), checksum="md5:" + "0" * 32) as server:
        result = download(server, tmp_path / "release", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "checksum mismatch for data.tar.gz: expected md5 0000" in result.stderr
    assert not (tmp_path / "release").exists()


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink"])
def test_malicious_members_are_refused(roadmap, tmp_path, kind):
    if kind == "symlink":
        member = tarfile.TarInfo("data/E003/classification/link.csv")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member = tarfile.TarInfo("../escape" if kind == "escape" else "/tmp/absolute-escape")
        member.size = 3
    with Server(build_tarball(roadmap, member)) as server:
        result = download(server, tmp_path / "release", check=False)
    assert result.returncode == 2
    assert f"refusing member {member.name!r}" in result.stderr
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "release").exists()
