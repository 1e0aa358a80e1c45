"""`durox-operator run`, counting every request the process sends to the apiserver.

The benchmark runs the operator through this module instead of the console script. It wraps
the two HTTP stacks the process uses (urllib3 under the Kubernetes client, aiohttp under kopf)
and rewrites `$DUROX_PROBE_OUT` twice a second with the counts by method and resource, so the
benchmark reads the operator's own requests, not the controllers' and kwok's that the
apiserver's metrics would mix in. Long-running watches count once, when they are opened.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import Counter
from typing import Any

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_RESOURCE = re.compile(
    r"/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([a-z]+)(/[^/?]+)?(/[a-z]+)?"
)


def _key(method: str, url: str) -> str:
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "/" in path else path
    match = _RESOURCE.search(path.split("?", 1)[0])
    resource = match.group(1) if match else path.split("?", 1)[0]
    if match and match.group(3):
        resource += match.group(3)  # status subresource
    watch = "watch=" in path
    kind = "WATCH" if watch else method.upper()
    if kind == "GET" and match and not match.group(2):
        kind = "LIST"
    return f"{kind} {resource}"


def _count(method: str, url: str) -> None:
    with _lock:
        _counts[_key(method, url)] += 1


def _install() -> None:
    import aiohttp
    import urllib3

    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def counted_urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        _count(method, url)
        return urlopen(self, method, url, *args, **kwargs)

    urllib3.connectionpool.HTTPConnectionPool.urlopen = counted_urlopen  # type: ignore[method-assign]

    request = aiohttp.ClientSession._request

    async def counted_request(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        params = kwargs.get("params") or {}
        _count(method, str(url) + ("?watch=1" if "watch" in params else ""))
        return await request(self, method, url, *args, **kwargs)

    setattr(aiohttp.ClientSession, "_request", counted_request)  # noqa: B010


def _dump_forever(path: str) -> None:
    while True:
        with _lock:
            data = dict(_counts)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)
        time.sleep(0.5)


def main() -> int:
    out = os.environ["DUROX_PROBE_OUT"]
    _install()
    threading.Thread(target=_dump_forever, args=(out,), daemon=True).start()
    from durox_operator import cli

    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
