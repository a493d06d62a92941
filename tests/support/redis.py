"""Start and stop real redis-server processes on free loopback ports for tests.

:class:`RedisServer` is one server (no persistence: a stopped server's data is gone);
it can be stopped and started again on the same port, as an outage and a recovery look to a
client.  :class:`RedisSentinel` is a Sentinel (``redis-server --sentinel``) watching one
:class:`RedisServer`; :func:`start_cluster` makes a Redis Cluster of one or more
cluster-enabled servers holding every slot.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.upstream import free_port

START_TIMEOUT = 10.0


def _binary(name: str = "redis-server") -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed; scripts/test installs it")
    return binary


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` on 127.0.0.1, without persistence.

    ``port`` pins the port (``None``: a free one, chosen at the first start and kept for
    restarts); ``args`` are extra command-line options (``--cluster-enabled yes``).
    """

    def __init__(self, workdir: Path, *, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.port = port or 0
        self.args = tuple(args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        """Start (again, on the same port once one was chosen) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.process = subprocess.Popen(
            [
                _binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _pings(self.port):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def restart(self) -> RedisServer:
        """Stop, then start on the same port (the data is gone: there is no persistence)."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL); the port is closed on return."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class RedisSentinel(RedisServer):
    """A Sentinel watching ``master`` under the service name ``service`` (quorum 1)."""

    def __init__(self, workdir: Path, master: RedisServer, service: str = "dcr") -> None:
        super().__init__(workdir)
        self.master = master
        self.service = service

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def start(self) -> RedisSentinel:
        if self.running:
            raise RuntimeError(f"sentinel on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # Sentinel rewrites its config file, so it gets one of its own, writable.
        config = self.workdir / f"sentinel-{self.port}.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 5000\n"
        )
        self.process = subprocess.Popen(
            [_binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._knows_master():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis sentinel did not start on port {self.port}")

    def _knows_master(self) -> bool:
        import redis

        try:
            with redis.Redis(port=self.port, socket_timeout=0.5) as client:
                address = client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
        except (redis.RedisError, OSError):
            return False
        return address is not None and int(address[1]) == self.master.port


class RedisCluster:
    """Cluster-enabled servers that, together, serve every one of the 16384 slots."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def start(self) -> RedisCluster:
        """Start the stopped nodes again on their ports (each reloads its nodes file: same
        slots, same peers; the data is gone) and wait for ``cluster_state:ok``."""
        for node in self.nodes:
            if not node.running:
                node.start()
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(node.port, len(self.nodes)) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not reach cluster_state:ok again")
            time.sleep(0.05)
        return self


def start_cluster(workdir: Path, size: int = 1) -> RedisCluster:
    """A Redis Cluster of ``size`` masters: the slots are split between them
    (``CLUSTER ADDSLOTSRANGE``) and the nodes introduced to each other (``CLUSTER MEET``);
    returns once every node reports ``cluster_state:ok``."""
    import redis

    nodes: list[RedisServer] = []
    # The bus port defaults to port + 10000, which does not exist for the upper part of the
    # ephemeral range (redis-server refuses to start above port 55535): each node is given
    # a free one, which CLUSTER MEET then names.
    bus_ports: list[int] = []
    try:
        for index in range(size):
            port = free_port()
            bus_ports.append(free_port())
            nodes.append(
                RedisServer(
                    workdir / f"node-{index}",
                    port=port,
                    args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--cluster-port",
                        str(bus_ports[-1]),
                    ),
                ).start()
            )
        bounds = [round(i * 16384 / size) for i in range(size + 1)]
        for index, node in enumerate(nodes):
            with redis.Redis(port=node.port) as client:
                client.execute_command(
                    "CLUSTER", "ADDSLOTSRANGE", bounds[index], bounds[index + 1] - 1
                )
                for other, bus_port in zip(nodes[index + 1 :], bus_ports[index + 1 :], strict=True):
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, bus_port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(_cluster_ok(node.port, size) for node in nodes):
                return RedisCluster(nodes)
            time.sleep(0.1)
        raise RuntimeError("the redis cluster did not reach cluster_state:ok")
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _cluster_ok(port: int, size: int) -> bool:
    import redis

    with redis.Redis(port=port) as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(size)
