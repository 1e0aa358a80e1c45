"""Start one hello::greet and print its result: `python -m hello.start NAME`.

Run inside a worker pod (`kubectl exec deploy/hello -- python -m hello.start world`), where
DUROX_STORE_URL already names the store, so the quickstart needs no client machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from durox import Client
from durox.worker import open_store
from hello.worker import GREET


async def main(name: str) -> int:
    store = await open_store(os.environ["DUROX_STORE_URL"])
    try:
        client = Client(store)
        instance = f"greet-{uuid.uuid4().hex[:8]}"
        await client.start_orchestration(instance, GREET, name)
        status = await client.wait_for_orchestration(instance, timeout=60)
        version = f"{GREET}@{status.orchestration_version}"
        print(f"{instance} {status.status} on {version}: {status.output}")
        return 0 if status.status == "Completed" else 1
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "world")))
