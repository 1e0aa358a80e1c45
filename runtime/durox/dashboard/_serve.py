"""Running the dashboard as a process: open the store once (nothing created or migrated, as
for every read-only command), serve until SIGINT or SIGTERM, close the store.

The address it listens on is printed once it listens, so a script (or a test) that asked for
port 0 learns the port the kernel chose.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys

from aiohttp import web

from durox.client import Client
from durox.errors import DuroxError
from durox.providers import Store
from durox.worker import StoreUrlError, open_existing_store, redacted, scrubbed

from ._app import DashboardSettings, build_app, store_label

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 30.0


async def serve(settings: DashboardSettings, host: str, port: int) -> int:
    """Exit status: 0 stopped by a signal, 2 could not open the store or the port."""
    url = settings.store_url
    try:
        store: Store = await asyncio.wait_for(
            open_existing_store(url, timeout=OPEN_TIMEOUT), OPEN_TIMEOUT
        )
    except StoreUrlError as exc:
        return _cannot_run(scrubbed(str(exc), url))
    except TimeoutError:
        return _cannot_run(f"cannot open the store {redacted(url)}: no answer")
    except (DuroxError, OSError, ValueError) as exc:
        return _cannot_run(f"cannot open the store {redacted(url)}: {scrubbed(str(exc), url)}")
    runner = web.AppRunner(build_app(Client(store), settings), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            return _cannot_run(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        mode = "writes allowed" if settings.allow_writes else "read-only"
        print(
            f"durox dashboard: serving http://{shown}:{bound[1]}/ for {store_label(url)} ({mode})",
            flush=True,
        )
        if not _loopback(host):
            log.warning(
                "the dashboard listens on %s: it has no login, so anyone who reaches that "
                "address can read the store%s",
                host,
                " and cancel or raise" if settings.allow_writes else "",
            )
        await _until_signalled()
        return 0
    finally:
        await runner.cleanup()
        await store.close()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cannot_run(message: str) -> int:
    print(f"durox dashboard: {message}", file=sys.stderr)
    return 2
