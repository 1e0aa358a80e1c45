"""The previous release of durox in its own virtualenv, for the rolling-upgrade test.

"Previous" is the commit just before the one that added the newest PostgreSQL migration: the
code whose workers are running when an upgrade applies that migration (the working tree's
HEAD while the newest migration is not committed yet). `DUROX_PREVIOUS_RELEASE` names another
commit. The virtualenv is built once per commit under `~/.cache/durox/previous-release/<commit>/`
(or `$DUROX_CACHE_DIR`, as the Kubernetes binaries are), from `git archive` of that commit, so
it needs the clone's history; being keyed by commit, it is shared by every clone, CI's included.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from durox.providers.postgres._driver import migrations

ROOT = Path(__file__).resolve().parents[2]
CACHE = (
    Path(os.environ.get("DUROX_CACHE_DIR") or Path.home() / ".cache" / "durox") / "previous-release"
)
MIGRATIONS = "runtime/durox/providers/postgres/migrations"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)} failed ({done.stderr.strip()}); the rolling-upgrade test"
            " needs the clone's history (not a shallow clone) or DUROX_PREVIOUS_RELEASE"
        )
    return done.stdout.strip()


def previous_commit() -> str:
    """The commit whose workers run while the newest migration is applied."""
    if named := os.environ.get("DUROX_PREVIOUS_RELEASE"):
        return _git("rev-parse", "--verify", f"{named}^{{commit}}")
    newest = migrations()[-1][1]
    added = _git("log", "-1", "--format=%H", "--diff-filter=A", "--", f"{MIGRATIONS}/{newest}")
    return _git("rev-parse", f"{added}^" if added else "HEAD")


def schema_version(commit: str) -> int:
    """The newest migration the release at `commit` applies."""
    names = _git("ls-tree", "--name-only", f"{commit}:{MIGRATIONS}").split()
    return max(int(n.split("_", 1)[0]) for n in names if n.endswith(".sql"))


def python_of(commit: str) -> Path:
    """The interpreter of a virtualenv holding durox[postgres] as of `commit` (built once)."""
    home = CACHE / commit
    python = home / "venv" / "bin" / "python"
    ready = home / "ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then find it
        if ready.exists():
            return python
        shutil.rmtree(home, ignore_errors=True)
        (home / "src").mkdir(parents=True)
        _git("archive", "--format=tar", "-o", str(home / "src.tar"), commit)
        subprocess.run(["tar", "-xf", str(home / "src.tar"), "-C", str(home / "src")], check=True)
        (home / "src.tar").unlink()
        subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"{home / 'src'}[postgres]"],
            check=True,
            cwd=home,
        )
        ready.write_text(commit + "\n")
    return python
