"""PostgreSQL clusters of the fault tests' own: started, stopped, killed and promoted with the
server binaries of this machine, data under /tmp (as root the server runs as `postgres`, which
may not enter the checkout)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

BIN = (
    Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    if glob.glob("/usr/lib/postgresql/*/bin/initdb")
    else None
)
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), "")
"""Debian's libfaketime (package `faketime`), preloaded into a worker to skew its clock."""
AS_ROOT = os.getuid() == 0
RUN_AS = ["runuser", "-u", "postgres", "--"] if AS_ROOT else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bin(name: str) -> str:
    if BIN is None:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/pg.sh)")
    return str(BIN / name)


def scratch_dir(prefix: str) -> Path:
    """A fresh directory under /tmp the server's user can write to."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if AS_ROOT:
        shutil.chown(path, "postgres")
    return path


def run(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUN_AS, *cmd], check=check, timeout=timeout, capture_output=True, text=True, cwd="/"
    )


class Cluster:
    """One PostgreSQL server on loopback (and on any further addresses given to `start`)."""

    def __init__(self, root: Path, name: str = "pg") -> None:
        self.root = root
        self.data = root / name
        self.log = root / f"{name}.log"
        self.port = free_port()

    def init(self, **settings: str) -> Cluster:
        run(_bin("initdb"), "-D", str(self.data), "-U", "durox", "--auth=trust", "-E", "UTF8")
        self.configure(
            fsync="on",
            max_connections="100",
            shared_buffers="32MB",
            unix_socket_directories=f"'{self.root}'",
            **settings,
        )
        self.allow("10.0.0.0/8")
        return self

    def configure(self, **settings: str) -> None:
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        run("sh", "-c", f"cat >> {self.data}/postgresql.auto.conf <<'EOF'\n{lines}EOF")

    def allow(self, network: str, database: str = "all") -> None:
        line = f"host {database} all {network} trust"
        run("sh", "-c", f"echo '{line}' >> {self.data}/pg_hba.conf")

    def start(self, listen: str = "127.0.0.1") -> None:
        opts = f"-p {self.port} -c listen_addresses='{listen}'"
        run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends end on their own when they see it gone)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def promote(self) -> None:
        run(_bin("pg_ctl"), "-D", str(self.data), "-w", "promote")

    def replica_of(self, primary: Cluster) -> Cluster:
        """Make this cluster a streaming replica of `primary` (which must be running)."""
        run(
            _bin("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "durox",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
        )
        self.configure(unix_socket_directories=f"'{self.root}'")
        return self

    def dsn(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql://durox@{host}:{self.port}/{database}"

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""
