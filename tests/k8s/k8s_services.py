"""What kube-proxy and a cluster DNS give pods, for the one real node and only while asked.

The tier runs neither: its tests reach pods by IP and run the operator on the host. A user's
cluster has both, and the quickstart relies on them as written: the operator pod talks to the
apiserver through the `kubernetes` Service (10.96.0.1:443, what every in-cluster client reads
from KUBERNETES_SERVICE_HOST), and the workers reach PostgreSQL as
`postgres.durox-quickstart.svc`. Two small stand-ins give exactly that, nothing more:

- the `kubernetes` Service's IP on the host, forwarding TCP to the apiserver on loopback. The
  apiserver's own certificate names that IP, so TLS verifies as in any cluster;
- a DNS responder on the pod bridge's gateway (the kubelet's `clusterDNS`) that answers
  `SERVICE.NAMESPACE.svc.cluster.local` with the Service's ready endpoint addresses (headless
  style: no kube-proxy routes ClusterIPs here) and NXDOMAIN for every other name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.k8s.k8s_control_plane import ControlPlane
from tests.k8s.k8s_node import BRIDGE, GATEWAY, sh

logger = logging.getLogger(__name__)

KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of --service-cluster-ip-range
DOMAIN = "svc.cluster.local"
A, NXDOMAIN = 1, 3


class Forwarder:
    """TCP from `listen` to `target`, byte for byte (TLS passes through untouched)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._server.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def parse_query(packet: bytes) -> tuple[int, int, bytes, str, int]:
    """(id, flags, question section, lower-case name, qtype) of a one-question query."""
    qid, flags = struct.unpack("!2H", packet[:4])
    labels, i = [], 12
    while packet[i]:
        length = packet[i]
        labels.append(packet[i + 1 : i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    (qtype,) = struct.unpack("!H", packet[i + 1 : i + 3])
    return qid, flags, packet[12 : i + 5], ".".join(labels).lower(), qtype


def answer(qid: int, flags: int, question: bytes, rcode: int, ips: list[str]) -> bytes:
    """A response: authoritative, recursion "available", the query's RD bit echoed."""
    out_flags = 0x8000 | 0x0400 | 0x0080 | (flags & 0x0100) | rcode
    records = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", A, 1, 5, 4) + socket.inet_aton(ip) for ip in ips
    )
    return struct.pack("!6H", qid, out_flags, 1, len(ips), 0, 0) + question + records


class ServiceDNS:
    """Answers for the cluster's Services from the apiserver, on `GATEWAY`:53/udp."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.asked: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((GATEWAY, 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def lookup(self, name: str) -> list[str] | None:
        """The addresses of a Service's name; None when no such Service."""
        if not name.endswith("." + DOMAIN):
            return None
        parts = name[: -len(DOMAIN) - 1].split(".")
        if len(parts) != 2:
            return None
        service, namespace = parts
        if (service, namespace) == ("kubernetes", "default"):
            return [KUBERNETES_SERVICE_IP]
        proc = self.plane.run(
            "kubectl", "get", "endpointslices", "-n", namespace, "-o", "json",
            "-l", f"kubernetes.io/service-name={service}", check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            return None
        items = json.loads(proc.stdout)["items"]
        if not items:
            return None
        return [
            address
            for item in items
            for endpoint in item.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready", True)
            for address in endpoint["addresses"]
        ]

    def _serve(self) -> None:
        while True:
            try:
                packet, peer = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            try:
                qid, flags, question, name, qtype = parse_query(packet)
                self.asked.append(name)
                ips = self.lookup(name)
                reply = (
                    answer(qid, flags, question, NXDOMAIN, [])
                    if ips is None
                    else answer(qid, flags, question, 0, ips if qtype == A else [])
                )
                self._sock.sendto(reply, peer)
            except Exception:  # a malformed query gets no answer, the server goes on
                logger.exception("DNS query from %s", peer)

    def close(self) -> None:
        self._sock.close()


@contextlib.contextmanager
def cluster_services(plane: ControlPlane) -> Iterator[ServiceDNS]:
    """The `kubernetes` Service's IP forwarding to the apiserver, and Service DNS, for pods
    of the real node (whose kubelet names `GATEWAY` as the cluster's DNS server)."""
    api = urlsplit(plane.server)
    sh("ip", "addr", "add", f"{KUBERNETES_SERVICE_IP}/32", "dev", BRIDGE, check=False)
    forwarder = Forwarder((KUBERNETES_SERVICE_IP, 443), (api.hostname or "", api.port or 443))
    dns = ServiceDNS(plane)
    try:
        yield dns
    finally:
        dns.close()
        forwarder.close()
        sh("ip", "addr", "del", f"{KUBERNETES_SERVICE_IP}/32", "dev", BRIDGE, check=False)
