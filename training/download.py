"""Fetch a MovieLens data set from GroupLens (or a mirror), verify it and unpack it in place.

The backend of ``python -m training download NAME``. Nothing partial ever sits under a final name:
the archive streams into a hidden temporary file in the data root, is checked against its published
length and MD5, unpacks into a hidden temporary directory, and only then is renamed into place, which
is atomic on one file system. Every failure removes the temporaries.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from movierec.data import detect_layout
from movierec.errors import DataError, DownloadError
from training.progress import progress

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
# The trainer's settings read these (env prefix MOVIEREC_); messages name them so users know the knobs.
BASE_URL_ENV = "MOVIEREC_DATA_BASE_URL"
TIMEOUT_ENV = "MOVIEREC_DOWNLOAD_TIMEOUT"

DATASETS: dict[str, str] = {
    "ml-latest-small": "ml-latest-small.zip",
    "ml-latest": "ml-latest.zip",
    "ml-100k": "ml-100k.zip",
    "ml-1m": "ml-1m.zip",
    "ml-10m": "ml-10m.zip",
    "ml-20m": "ml-20m.zip",
    "ml-25m": "ml-25m.zip",
    "ml-32m": "ml-32m.zip",
}
# The folder each archive unpacks to, where it is not the data set's name.
FOLDERS: dict[str, str] = {"ml-10m": "ml-10M100K"}

_CHUNK = 1 << 20
_MD5_FORMATS = (
    re.compile(r"^MD5 \((?P<file>.+)\) = (?P<md5>[0-9a-fA-F]{32})$"),  # BSD `md5`
    re.compile(r"^(?P<md5>[0-9a-fA-F]{32})\s+\*?(?P<file>.+)$"),  # GNU `md5sum`
    re.compile(r"^(?P<md5>[0-9a-fA-F]{32})$"),  # the bare digest
)


def folder_name(name: str) -> str:
    """The directory a data set's archive unpacks to (``ml-10m`` -> ``ml-10M100K``)."""
    return FOLDERS.get(name, name)


def download_dataset(
    name: str,
    data_root: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 30.0,
    show_progress: bool = True,
) -> Path:
    """Make a MovieLens data set available under ``data_root``, downloading it if needed.

    Args:
        name: A key of ``DATASETS``, e.g. ``"ml-latest-small"``.
        data_root: The directory that holds data sets; created if missing.
        base_url: Where ``{name}.zip`` and ``{name}.zip.md5`` live (GroupLens or a mirror).
        timeout: Seconds to wait for the server on each connect or read.
        show_progress: Report bytes, rate and time left on standard error (training/progress.py).

    Returns:
        The directory holding the unpacked layout, ``data_root / folder_name(name)``, ready for
        ``movierec.data.load_ratings``.

    Raises:
        DownloadError: Unknown name; server unreachable or answering with an error; a truncated
            download; a checksum mismatch; an archive that is corrupt, escapes its directory or lacks
            the expected layout; or a target that exists without a recognisable layout.
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    data_root = Path(data_root)
    target = data_root / folder_name(name)
    if target.exists():
        try:
            layout = detect_layout(target)
        except DataError as error:
            # Never delete what we did not verify: it may be the user's own data.
            raise DownloadError(
                f"{target} exists but holds no recognisable MovieLens layout ({error}); "
                "remove or rename it, then download again"
            ) from error
        logger.info("%s is already in %s (%s layout); nothing to download", name, target, layout)
        return target

    zip_url = f"{base_url.rstrip('/')}/{DATASETS[name]}"
    # The checksum first: it is tiny, so an unreachable server fails before any big transfer and
    # before anything is created on disk.
    expected_md5 = _parse_md5(_fetch_text(f"{zip_url}.md5", name, timeout), f"{zip_url}.md5")
    data_root.mkdir(parents=True, exist_ok=True)

    archive: Path | None = None
    unpack_dir: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=data_root, prefix=f".{name}-", suffix=".zip.part", delete=False
        ) as f:
            archive = Path(f.name)
        actual_md5 = _fetch_file(zip_url, archive, name, timeout, show_progress)
        if actual_md5 != expected_md5:
            raise DownloadError(
                f"checksum mismatch for {zip_url}: expected MD5 {expected_md5}, got {actual_md5}; "
                "the download is corrupt or the mirror is stale. Try again, or use another mirror."
            )
        unpack_dir = Path(tempfile.mkdtemp(dir=data_root, prefix=f".{name}-unpack-"))
        unpacked = _unpack(archive, unpack_dir, folder_name(name), zip_url)
        try:
            unpacked.rename(target)
        except OSError as error:
            # Another process may have finished the same download first; its copy is as good as ours.
            if not _has_layout(target):
                raise DownloadError(f"cannot move the unpacked {name} to {target}: {error}") from error
            logger.info("%s appeared in %s while downloading; using it", name, target)
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
        if unpack_dir is not None:
            shutil.rmtree(unpack_dir, ignore_errors=True)
    logger.info("downloaded %s to %s", name, target)
    return target


def _has_layout(directory: Path) -> bool:
    try:
        detect_layout(directory)
    except DataError:
        return False
    return True


def _unreachable(url: str, name: str, reason: object) -> DownloadError:
    local = f"/path/to/{folder_name(name)}"
    return DownloadError(
        f"could not reach {url} ({reason}). To use a local copy instead, download it elsewhere, unpack "
        f"it, and train on it: `python -m training train --data {local}`, or with make "
        f"`DATA={local} make run` (or `make train`). Or set {BASE_URL_ENV} to a mirror that serves "
        f"{DATASETS[name]} and {DATASETS[name]}.md5."
    )


def _open(url: str, name: str, timeout: float) -> http.client.HTTPResponse:
    """Open a URL, turning every network failure into a DownloadError that says what to do."""
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"{url} answered HTTP {error.code} {error.reason}; check the data set name and, if set, "
            f"{BASE_URL_ENV}"
        ) from error
    except urllib.error.URLError as error:
        raise _unreachable(url, name, error.reason) from error
    except (OSError, http.client.HTTPException) as error:  # timeouts, resets, garbled status lines
        raise _unreachable(url, name, error) from error
    return response


def _fetch_text(url: str, name: str, timeout: float) -> str:
    with _open(url, name, timeout) as response:
        try:
            return response.read(64 * 1024).decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as error:
            raise _unreachable(url, name, error) from error


def _parse_md5(text: str, url: str) -> str:
    """The digest out of an MD5 sidecar: bare hex, ``md5sum`` output or BSD ``MD5 (file) = hex``."""
    for line in text.splitlines():
        for pattern in _MD5_FORMATS:
            match = pattern.match(line.strip())
            if match:
                return match.group("md5").lower()
    raise DownloadError(f"{url} holds no MD5 checksum I can read (got {text[:100]!r})")


def _fetch_file(url: str, destination: Path, name: str, timeout: float, show_progress: bool = True) -> str:
    """Stream a URL into a file, checking its length; returns the hex MD5 of what arrived."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with _open(url, name, timeout) as response:
        header = response.headers.get("Content-Length")
        expected = int(header) if header and header.isdigit() else None
        logger.info(
            "downloading %s (%s)", url, f"{expected / 1e6:.1f} MB" if expected is not None else "size unknown"
        )
        try:
            with (
                destination.open("wb") as out,
                progress(
                    f"downloading {name}", expected, unit="B", unit_scale=True, enabled=show_progress
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except http.client.IncompleteRead as error:
            received += len(error.partial)
            raise _truncated(url, received, expected) from error
        except TimeoutError as error:
            raise DownloadError(
                f"timed out downloading {url} after {received} bytes; try again, or raise {TIMEOUT_ENV}"
            ) from error
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(f"downloading {url} failed after {received} bytes: {error}") from error
    if expected is not None and received != expected:
        raise _truncated(url, received, expected)
    return digest.hexdigest()


def _truncated(url: str, received: int, expected: int | None) -> DownloadError:
    return DownloadError(f"download of {url} truncated: got {received} of {expected} bytes; try again")


def _unpack(archive: Path, directory: Path, folder: str, url: str) -> Path:
    """Extract an archive into `directory` and return its top folder, refusing members that escape it."""
    root = directory.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                # zipfile quietly rewrites '..' and absolute names; a hostile archive is refused instead.
                destination = (root / member.filename).resolve()
                if not destination.is_relative_to(root) or Path(member.filename).is_absolute():
                    raise DownloadError(
                        f"{url}: archive member {member.filename!r} would be written outside the target "
                        "directory; refusing to unpack it"
                    )
            bundle.extractall(root)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{url} is not a valid zip archive: {error}") from error
    unpacked = root / folder
    if not unpacked.is_dir():
        found = ", ".join(sorted(child.name for child in root.iterdir())) or "nothing"
        raise DownloadError(f"{url}: expected the archive to hold the folder {folder}/, found {found}")
    try:
        detect_layout(unpacked)
    except DataError as error:
        raise DownloadError(f"{url}: the archive's {folder}/ holds no MovieLens layout: {error}") from error
    return unpacked
