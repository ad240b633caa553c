"""A throwaway PostgreSQL cluster from the installed binaries (tests and benchmarks).

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
user (``runuser``). It listens on a free localhost port and a socket in its own temporary
folder, with trust authentication, and is removed by ``stop()``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

URL_VARIABLE = "ATTIC_TEST_POSTGRES_URL"


def find_bindir() -> Path | None:
    """Return the folder holding ``initdb`` and ``pg_ctl``, newest version first."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version, reverse=True)
    return Path(found[0]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: ``url`` to connect, ``restart()`` and ``stop()`` to control it."""

    bindir: Path
    root: Path
    port: int
    as_user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://attic@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-w", "-o", options,
                  "-l", str(self.root / "log"), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """Stop the server (dropping every connection), wait, start it again."""
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """Create and start a cluster in a fresh temporary folder.

    Raises:
        RuntimeError: no PostgreSQL binaries are installed.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            f"no PostgreSQL binaries found (initdb, pg_ctl): install PostgreSQL or set "
            f"{URL_VARIABLE} to a server's URL"
        )
    root = Path(tempfile.mkdtemp(prefix="attic-pg-"))
    as_user = "postgres" if os.geteuid() == 0 else None
    if as_user is not None:
        shutil.chown(root, user=as_user)
    cluster = Cluster(bindir, root, _free_port(), as_user)
    cluster._run("initdb", "-D", str(cluster.data), "-U", "attic", "-A", "trust",
                 "--encoding=UTF8", "--locale=C", "--no-sync")  # fmt: skip
    cluster.start()
    return cluster
