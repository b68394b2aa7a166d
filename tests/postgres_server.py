"""A private PostgreSQL server for a test that must stop and start it (an outage) without touching the shared
one (`MOVIEREC_TEST_POSTGRES_URL`, which other tests use at the same time).

Built from Debian's server binaries (`/usr/lib/postgresql/<version>/bin`, the `postgresql` package that
.ci/start-postgres.sh installs): `initdb` in a fresh directory under the system temp dir, `pg_ctl` on a free
port on 127.0.0.1, trust authentication and no fsync (test data only). PostgreSQL refuses to run as root, so as
root its tools run as the `postgres` user (`runuser`), which owns the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

from servers import free_port

USER = "movierec"
DATABASE = "movierec"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(
        (Path(p).parent for p in glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
    )
    return found[-1] if found else None


def why_unavailable() -> str | None:
    """Why a private server cannot be started here (for a skip), or None when it can."""
    if server_binaries() is None:
        return "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run the PostgreSQL server as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` to run the PostgreSQL server as `postgres`"
    return None


class PostgresServer:
    """One initialised cluster; `start()` / `stop()` as often as a test likes, `url` stays the same."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root, self.bin = root, bin_dir
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _command(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*prefix, str(self.bin / tool), *args]
        return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)

    def _run(self, tool: str, *args: str) -> None:
        result = self._command(tool, *args)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {result.stdout}{result.stderr}{tail}")

    def initialise(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync")

    def start(self) -> None:
        """Start and wait until it accepts connections (on the same port every time)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: disconnect every client and shut down at once, as a crashed or restarted server looks to
        them (`immediate` would also skip the shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._command("pg_ctl", "-D", str(self.data), "status", timeout=30).returncode == 0

    def create_database(self) -> None:
        import psycopg

        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """A started server with an empty `movierec` database; stopped and removed afterwards, whatever happened.

    The directory is a fresh one under the system temp dir (not pytest's tmp_path: its parents are private to
    root, where the `postgres` user could not reach them) with a short path (the socket lives in it).
    """
    reason = why_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    bin_dir = server_binaries()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = PostgresServer(root, bin_dir)
    try:
        server.initialise()
        server.start()
        server.create_database()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
