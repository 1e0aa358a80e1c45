"""scripts/pg.sh starts the throw-away PostgreSQL from any checkout, also from one the server's
user cannot enter (as root the server runs as `postgres`; a clone under /root is mode 0700),
and `stop` leaves no server and no directory behind."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


def _pg_sh(checkout: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "pg.sh"), command],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


async def test_pg_sh_serves_a_checkout_in_a_private_directory(tmp_path: Path) -> None:
    if os.getuid() != 0 and not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        message = "no PostgreSQL server binaries, and not root to install them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)  # whatever the umask: only the owner may enter, as with /root
    checkout = home / "durox"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "pg.sh", checkout / "scripts" / "pg.sh")
    env = {k: v for k, v in os.environ.items() if k not in ("DUROX_PG_DIR", "DUROX_TEST_PG_DSN")}

    started = await asyncio.to_thread(_pg_sh, checkout, "start", env)
    assert started.returncode == 0, started.stderr
    printed = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
    )
    dsn, cluster = printed["DUROX_TEST_PG_DSN"], Path(printed["DUROX_PG_DIR"])
    try:
        assert not cluster.is_relative_to(home), "the cluster must live outside the checkout"
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_database()") == "durox_test"
        finally:
            await conn.close()
    finally:
        stopped = await asyncio.to_thread(
            _pg_sh, checkout, "stop", {**env, "DUROX_PG_DIR": str(cluster)}
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not await asyncio.to_thread(cluster.exists), (
        "stop removes the throw-away cluster's directory"
    )
    with pytest.raises(ConnectionRefusedError):  # the server is gone
        await asyncpg.connect(dsn, timeout=5)
