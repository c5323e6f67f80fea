"""Debian's nginx, Apache and lighttpd in front of a test server, configured from docs/deployment.md.

The site configurations are the blocks of docs/deployment.md marked `<!-- tested: NAME -->`, with
ports and file names filled in (each filled-in value must be in the block, so the doc cannot drift
from what is run). Around each, a minimal main configuration of the test's own (pid file, logs,
modules) stands in for the distribution's, so the proxy runs from a temporary folder on a free port.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.env import ROOT, missing

DEPLOYMENT = ROOT / "docs" / "deployment.md"
START_TIMEOUT_S = 15.0
DOC_PORT = "443"  # what the documented configurations listen on
DOC_CERT = "/etc/ssl/pulsewire/fullchain.pem"
DOC_KEY = "/etc/ssl/pulsewire/privkey.pem"
DOC_IDLE_TIMEOUT_S = 90
# Where each configuration sets its idle timeout, as documented.
IDLE_TIMEOUTS = {
    "nginx": f"{DOC_IDLE_TIMEOUT_S}s;",
    "apache": f"Timeout {DOC_IDLE_TIMEOUT_S}",
    "lighttpd": f"-idle = {DOC_IDLE_TIMEOUT_S}",
}
BINARIES = {"nginx": "/usr/sbin/nginx", "apache": "/usr/sbin/apache2", "lighttpd": "/usr/sbin/lighttpd"}
PACKAGES = {"nginx": "nginx", "apache": "apache2", "lighttpd": "lighttpd lighttpd-mod-openssl"}


def config_block(name: str, doc: Path = DEPLOYMENT) -> str:
    """The fenced block after `<!-- tested: NAME -->` in `doc` (docs/deployment.md unless told)."""
    text = doc.read_text()
    found = re.search(rf"^<!-- tested: {re.escape(name)} -->\n```[\w.-]*\n(.*?)^```", text, re.M | re.S)
    assert found is not None, f"docs/{doc.name} has no block marked <!-- tested: {name} -->"
    return found.group(1)


def fill(block: str, values: dict[str, str]) -> str:
    """`block` with each documented value replaced by the test's; each must be in the block."""
    for documented, actual in values.items():
        assert documented in block, f"{documented!r} is no longer in the documented configuration"
        block = block.replace(documented, actual)
    return block


def env_file(block: str) -> dict[str, str]:
    """KEY=value lines of an environment file."""
    return dict(line.split("=", 1) for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def require(kind: str) -> str:
    binary = BINARIES[kind]
    if not Path(binary).exists():
        missing(f"{binary} is not installed", f"tests/run installs it: apt-get install -y {PACKAGES[kind]}")
    return binary


def nginx_command(binary: str, folder: Path, site: Path) -> list[str]:
    """nginx in the foreground with `site` inside a minimal main configuration kept in `folder`."""
    temp_paths = "".join(
        f"    {kind}_temp_path {folder}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "main.conf"
    error_log = folder / "error.log"
    main.write_text(
        f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {folder}/nginx.pid;\n"
        f"error_log {error_log} info;\nevents {{ worker_connections 4096; }}\n"
        f"http {{\n    access_log {folder}/access.log;\n{temp_paths}    include {site};\n}}\n"
    )
    return [binary, "-e", str(error_log), "-p", str(folder), "-c", str(main)]


def wait_listening(proc: subprocess.Popen[bytes], port: int, name: str, logs: Callable[[], str]) -> None:
    """Until `proc` listens on 127.0.0.1:`port`; an exit or START_TIMEOUT_S without it raises, with `logs()`."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} at start:\n{logs()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(f"{name} did not listen on {port} within {START_TIMEOUT_S:g} s:\n{logs()}")


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proxy:
    """One of the documented reverse proxies, with TLS, on a free port in front of `upstream_port`."""

    kind: str
    folder: Path
    upstream_port: int
    cert: Path
    key: Path
    idle_timeout_s: int = DOC_IDLE_TIMEOUT_S  # a shorter one lets a test outlast it
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}/pulsewire"

    @property
    def ws_base(self) -> str:
        return f"wss://127.0.0.1:{self.port}/pulsewire"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def start(self) -> Proxy:
        binary = require(self.kind)
        self.folder.mkdir(parents=True, exist_ok=True)
        command = getattr(self, f"_{self.kind}")(binary)
        with open(self.folder / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen(command, stdout=err, stderr=err, start_new_session=True)
        self._wait_listening()
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in (self.error_log, self.folder / "stderr.log") if p.exists()
        )

    def _wait_listening(self) -> None:
        assert self.proc is not None
        wait_listening(self.proc, self.port, self.kind, self.logs)

    def _site(self, name: str, values: dict[str, str]) -> Path:
        timeout = IDLE_TIMEOUTS[name]
        values[timeout] = timeout.replace(str(DOC_IDLE_TIMEOUT_S), str(self.idle_timeout_s))
        site = self.folder / f"{name}.conf"
        site.write_text(fill(config_block(name), values))
        return site

    def _nginx(self, binary: str) -> list[str]:
        site = self._site(
            "nginx",
            {
                f"listen {DOC_PORT} ssl": f"listen 127.0.0.1:{self.port} ssl",
                DOC_CERT: str(self.cert),
                DOC_KEY: str(self.key),
                "127.0.0.1:8000": f"127.0.0.1:{self.upstream_port}",
            },
        )
        return nginx_command(binary, self.folder, site)

    def _apache(self, binary: str) -> list[str]:
        site = self._site(
            "apache",
            {
                f"<VirtualHost *:{DOC_PORT}>": f"<VirtualHost 127.0.0.1:{self.port}>",
                DOC_CERT: str(self.cert),
                DOC_KEY: str(self.key),
                "127.0.0.1:8000": f"127.0.0.1:{self.upstream_port}",
            },
        )
        modules = [
            "mpm_event",
            "authz_core",
            "alias",
            "headers",
            "proxy",
            "proxy_http",
            "proxy_wstunnel",
            "ssl",
            "socache_shmcb",
        ]
        loads = "".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n" for m in modules)
        tmp = self.folder
        main = self.folder / "main.conf"
        main.write_text(
            f"ServerRoot {tmp}\nServerName 127.0.0.1\nPidFile {tmp}/apache.pid\nDefaultRuntimeDir {tmp}\n"
            f"Mutex file:{tmp} default\nErrorLog {self.error_log}\nLogLevel warn\n{loads}"
            f"User nobody\nGroup nogroup\nListen 127.0.0.1:{self.port}\nInclude {site}\n"
        )
        return [binary, "-f", str(main), "-DFOREGROUND"]

    def _lighttpd(self, binary: str) -> list[str]:
        site = self._site(
            "lighttpd",
            {
                f'$SERVER["socket"] == ":{DOC_PORT}"': f'$SERVER["socket"] == "127.0.0.1:{self.port}"',
                DOC_CERT: str(self.cert),
                DOC_KEY: str(self.key),
                '"port" => 8000': f'"port" => {self.upstream_port}',
            },
        )
        tmp = self.folder
        (tmp / "www").mkdir(exist_ok=True)
        main = self.folder / "main.conf"
        main.write_text(
            f'server.document-root = "{tmp}/www"\nserver.bind = "127.0.0.1"\nserver.port = {self.port}\n'
            f'server.pid-file = "{tmp}/lighttpd.pid"\nserver.errorlog = "{self.error_log}"\n'
            f'include "{site}"\n'
        )
        return [binary, "-D", "-f", str(main)]
