"""Downloading data sets against a local HTTP server: success, idempotence and every failure mode."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import layout_fixtures

from movierec.data import detect_layout, load_ratings
from movierec.errors import DownloadError
from training.download import DATASETS, download_dataset, folder_name

FIXTURES = layout_fixtures()
NAME = "ml-latest-small"
PREFIX = "/datasets"  # a base URL with a path, like GroupLens's


def build_zip(
    folder: str, source: Path = FIXTURES / "layout_csv", extra: dict[str, bytes] | None = None
) -> bytes:
    """A zip like GroupLens publishes: the layout's files inside one top folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(source.iterdir()):
            bundle.write(path, f"{folder}/{path.name}")
        for member, content in (extra or {}).items():
            bundle.writestr(member, content)
    return buffer.getvalue()


@dataclass
class Route:
    body: bytes
    status: int = 200
    # Claim this many more bytes than the body holds, then hang up: a truncated transfer.
    missing_bytes: int = 0
    delay: float = 0.0  # seconds to stall before answering


@dataclass
class FakeServer:
    base_url: str
    routes: dict[str, Route]
    requests: list[str] = field(default_factory=list)

    def serve(self, name: str, archive: bytes, md5_text: str | None = None) -> None:
        """Publish `archive` as {name}.zip with a checksum sidecar (the right one unless given)."""
        zip_name = DATASETS[name]
        self.routes[f"{PREFIX}/{zip_name}"] = Route(archive)
        md5 = md5_text if md5_text is not None else hashlib.md5(archive).hexdigest()
        self.routes[f"{PREFIX}/{zip_name}.md5"] = Route(md5.encode())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    routes: dict[str, Route] = {}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if route.delay:
                time.sleep(route.delay)
            # The client may give up first, as the timeout test means it to.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.respond(route)

        def respond(self, route: Route) -> None:
            self.send_response(route.status)
            self.send_header("Content-Length", str(len(route.body) + route.missing_bytes))
            self.end_headers()
            if route.missing_bytes:
                self.wfile.write(route.body[: len(route.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{httpd.server_address[1]}{PREFIX}"
        yield FakeServer(base_url=base_url, routes=routes, requests=requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def leftovers(data_root: Path) -> list[str]:
    return sorted(path.name for path in data_root.iterdir()) if data_root.exists() else []


# --- success ---------------------------------------------------------------------------------------


def test_download_unpacks_a_loadable_layout(server: FakeServer, tmp_path: Path) -> None:
    server.serve(NAME, build_zip(NAME))
    data_root = tmp_path / "data"

    target = download_dataset(NAME, data_root, base_url=server.base_url)

    assert target == data_root / NAME
    assert detect_layout(target) == "csv"
    assert len(load_ratings(target).ratings) == 12
    assert leftovers(data_root) == [NAME]  # no temporary file or folder left behind
    assert server.requests == [f"{PREFIX}/{NAME}.zip.md5", f"{PREFIX}/{NAME}.zip"]


def test_second_download_does_not_touch_the_network(server: FakeServer, tmp_path: Path) -> None:
    server.serve(NAME, build_zip(NAME))
    first = download_dataset(NAME, tmp_path, base_url=server.base_url)
    calls = len(server.requests)

    second = download_dataset(NAME, tmp_path, base_url=server.base_url)

    assert second == first
    assert len(server.requests) == calls


@pytest.mark.parametrize(
    "sidecar",
    ["{md5}", "{md5}\n", "{md5}  ml-latest-small.zip\n", "MD5 (ml-latest-small.zip) = {md5}\n", "{MD5}"],
)
def test_every_md5_sidecar_format_is_understood(server: FakeServer, tmp_path: Path, sidecar: str) -> None:
    archive = build_zip(NAME)
    digest = hashlib.md5(archive).hexdigest()
    server.serve(NAME, archive, md5_text=sidecar.format(md5=digest, MD5=digest.upper()))

    assert download_dataset(NAME, tmp_path, base_url=server.base_url) == tmp_path / NAME


def test_ml_10m_unpacks_to_its_own_folder_name(server: FakeServer, tmp_path: Path) -> None:
    server.serve("ml-10m", build_zip("ml-10M100K", FIXTURES / "layout_dat"))

    target = download_dataset("ml-10m", tmp_path, base_url=server.base_url)

    assert target == tmp_path / "ml-10M100K" == tmp_path / folder_name("ml-10m")
    assert detect_layout(target) == "dat"


# --- failures leave nothing behind -------------------------------------------------------------------


def test_checksum_mismatch_raises_and_leaves_nothing(server: FakeServer, tmp_path: Path) -> None:
    archive = build_zip(NAME)
    server.serve(NAME, archive, md5_text="0" * 32)

    with pytest.raises(DownloadError) as caught:
        download_dataset(NAME, tmp_path / "data", base_url=server.base_url)

    message = str(caught.value)
    assert "checksum mismatch" in message
    assert "0" * 32 in message
    assert hashlib.md5(archive).hexdigest() in message
    assert f"{server.base_url}/{NAME}.zip" in message
    assert leftovers(tmp_path / "data") == []


def test_truncated_download_raises_and_leaves_nothing(server: FakeServer, tmp_path: Path) -> None:
    archive = build_zip(NAME)
    server.serve(NAME, archive)
    server.routes[f"{PREFIX}/{NAME}.zip"] = Route(archive, missing_bytes=1000)

    with pytest.raises(DownloadError, match=rf"truncated: got \d+ of {len(archive) + 1000} bytes"):
        download_dataset(NAME, tmp_path, base_url=server.base_url)

    assert leftovers(tmp_path) == []


def test_unreachable_server_fails_fast_with_a_local_copy_hint(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The socket is closed: nothing listens on that port, so connecting is refused at once.
    started = time.monotonic()

    with pytest.raises(DownloadError) as caught:
        download_dataset(NAME, tmp_path / "data", base_url=f"http://127.0.0.1:{port}/datasets", timeout=3)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "could not reach" in message
    assert f"http://127.0.0.1:{port}/datasets/{NAME}.zip" in message
    assert "--data /path/to/ml-latest-small" in message
    # After `make run` the user drives make, not the trainer: the hint names make's form too (issue 14, 4.3).
    assert "DATA=/path/to/ml-latest-small make run" in message
    assert "MOVIEREC_DATA_BASE_URL" in message
    assert not (tmp_path / "data").exists()


def test_stalled_server_times_out_with_the_same_hint(server: FakeServer, tmp_path: Path) -> None:
    server.serve(NAME, build_zip(NAME))
    server.routes[f"{PREFIX}/{NAME}.zip.md5"].delay = 2.0
    started = time.monotonic()

    with pytest.raises(DownloadError, match=r"could not reach .*--data /path/to/ml-latest-small"):
        download_dataset(NAME, tmp_path / "data", base_url=server.base_url, timeout=0.3)

    assert time.monotonic() - started < 1.5
    assert not (tmp_path / "data").exists()


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        download_dataset("ml-7m", tmp_path)

    for name in DATASETS:
        assert name in str(caught.value)


def test_missing_file_on_the_server_is_reported(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset(NAME, tmp_path, base_url=server.base_url)


def test_archive_escaping_its_directory_is_refused(server: FakeServer, tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    server.serve(NAME, build_zip(NAME, extra={"../evil.txt": b"gotcha"}))

    with pytest.raises(DownloadError, match="outside the target directory"):
        download_dataset(NAME, data_root, base_url=server.base_url)

    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(data_root) == []


def test_archive_without_the_expected_folder_is_refused(server: FakeServer, tmp_path: Path) -> None:
    server.serve(NAME, build_zip("something-else"))

    with pytest.raises(DownloadError, match="expected the archive to hold the folder ml-latest-small/"):
        download_dataset(NAME, tmp_path, base_url=server.base_url)

    assert leftovers(tmp_path) == []


def test_corrupt_archive_is_refused(server: FakeServer, tmp_path: Path) -> None:
    server.serve(NAME, b"not a zip at all")

    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download_dataset(NAME, tmp_path, base_url=server.base_url)

    assert leftovers(tmp_path) == []


def test_existing_folder_without_a_layout_is_left_alone(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "mine.txt").write_text("keep me")

    with pytest.raises(DownloadError, match="remove or rename it"):
        download_dataset(NAME, tmp_path, base_url=server.base_url)

    assert (tmp_path / NAME / "mine.txt").read_text() == "keep me"
    assert server.requests == []
