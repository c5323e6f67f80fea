"""A cluster of real Pulsewire instances for tests: one PostgreSQL database, a private Redis (so that
it can be killed and restarted under them), N `pulsewire serve` processes, and Debian's nginx in
front of them, configured from the block of docs/cluster.md marked `<!-- tested: nginx-cluster -->`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.env import ROOT
from tests.support.redisserver import PrivateRedis
from tests.support.server import Server, free_port
from tests.support.webservers import config_block, fill, nginx_command, require, stop_process, wait_listening

CLUSTER_DOC = ROOT / "docs" / "cluster.md"
DOC_UPSTREAMS = ("10.0.0.11:8000", "10.0.0.12:8000", "10.0.0.13:8000")


@dataclass
class Nginx:
    """nginx on a free port in front of `upstreams`, from the documented configuration."""

    folder: Path
    upstreams: list[int]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        binary = require("nginx")
        self.folder.mkdir(parents=True, exist_ok=True)
        values = {"listen 80;": f"listen 127.0.0.1:{self.port};"}
        values.update({doc: f"127.0.0.1:{port}" for doc, port in zip(DOC_UPSTREAMS, self.upstreams, strict=True)})
        site = self.folder / "site.conf"
        site.write_text(fill(config_block("nginx-cluster", CLUSTER_DOC), values))
        with open(self.folder / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen(nginx_command(binary, self.folder, site), stdout=err, stderr=err)
        wait_listening(self.proc, self.port, "nginx", lambda: (self.folder / "error.log").read_text()[-2000:])
        return self

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Cluster:
    instances: list[Server]
    redis: PrivateRedis
    nginx: Nginx

    def stop(self) -> None:
        self.nginx.stop()
        for server in self.instances:
            server.stop()
        self.redis.destroy()

    def via_nginx(self) -> Server:
        """A stand-in Server whose addresses are nginx's (for the clients in tests/support/clients.py)."""
        first = self.instances[0]
        return _Fronted(first.data_dir, database_url=first.database_url, admin_key=first.admin_key, front=self.nginx)


@dataclass
class _Fronted(Server):
    front: Nginx | None = None

    @property
    def base(self) -> str:
        assert self.front is not None
        return self.front.base

    @property
    def ws_base(self) -> str:
        assert self.front is not None
        return self.front.ws_base


def start_cluster(tmp: Path, database_url: str, count: int = 3, **settings: str) -> Cluster:
    """`count` instances on one database and a private Redis, nginx in front; stop() ends them all."""
    redis = PrivateRedis()
    redis.start()
    instances: list[Server] = []
    try:
        admin_key = "pwa_test_cluster"
        common = {"redis_url": redis.url, "trusted_proxies": "127.0.0.1", **settings}
        for n in range(count):
            server = Server(tmp / f"instance-{n}", database_url=database_url, admin_key=admin_key, settings=common)
            instances.append(server.start())
        nginx = Nginx(tmp / "nginx", [s.port for s in instances]).start()
    except BaseException:
        for server in instances:
            server.stop()
        redis.destroy()
        raise
    return Cluster(instances, redis, nginx)
