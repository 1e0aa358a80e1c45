"""A network namespace joined to this one by a veth pair, and partitions made inside it.

Every address is on the pair (10.231.N.1 on this side, 10.231.N.2 inside), so no packet ever
leaves the machine. A partition drops packets silently inside the namespace (`DROP`, never
`REJECT`): the worker sees no error, only silence, as it would behind a failed switch.
"""

from __future__ import annotations

import os
import random
import subprocess


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Namespace:
    def __init__(self) -> None:
        used = sh("ip", "-4", "-o", "addr").stdout
        for _ in range(100):
            n = random.randrange(0, 256)
            if f"10.231.{n}." not in used:
                break
        tag = f"{os.getpid() % 10000}{n}"
        self.name = f"dxf{tag}"
        self.outer, self.inner = f"dxh{tag}", f"dxn{tag}"
        self.host_ip, self.ns_ip = f"10.231.{n}.1", f"10.231.{n}.2"
        self.rules: list[list[str]] = []

    def __enter__(self) -> Namespace:
        sh("ip", "netns", "add", self.name)
        try:
            sh("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            sh("ip", "link", "set", self.inner, "netns", self.name)
            sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.outer)
            sh("ip", "link", "set", self.outer, "up")
            self.exec("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.inner)
            self.exec("ip", "link", "set", self.inner, "up")
            self.exec("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "link", "del", self.outer, check=False)  # gone with its peer, normally

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.name, *cmd)

    def prefix(self) -> list[str]:
        """Put before a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def partition(self, port: int, *, requests: bool = True, replies: bool = True) -> None:
        """Silently drop the namespace's traffic to (`requests`) and from (`replies`) the
        server's `port` on the host side; other ports (the worker's HTTP) still pass."""
        if requests:
            self._drop("OUTPUT", "-d", self.host_ip, "--dport", str(port))
        if replies:
            self._drop("INPUT", "-s", self.host_ip, "--sport", str(port))

    def _drop(self, chain: str, *match: str) -> None:
        rule = [chain, "-p", "tcp", *match, "-j", "DROP"]
        self.exec("iptables", "-A", *rule)
        self.rules.append(rule)

    def heal(self) -> None:
        while self.rules:
            self.exec("iptables", "-D", *self.rules.pop())
