"""A real nginx (the OS package) on a free loopback port, running the shipped recipe
``deploy/nginx/dcr-gateway.conf`` with its addresses replaced by the test's.

The recipe is used as shipped except for the lines naming addresses (and, on request,
the optional include): each replacement must match exactly once, so a test breaks loudly
when the recipe changes shape rather than silently testing something else.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.paths import ROOT

RECIPE = ROOT / "deploy" / "nginx" / "dcr-gateway.conf"
CLIENT_ENDPOINTS = ROOT / "deploy" / "nginx" / "dcr-gateway-client-endpoints.conf"
START_TIMEOUT = 10.0
_INCLUDE = "# include /etc/nginx/dcr-gateway-client-endpoints.conf;"


def nginx_binary() -> str | None:
    """nginx on PATH, or where Debian puts it (``/usr/sbin`` is not on every PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{RECIPE.name}: expected {old!r} once, found it {count} times")
    return text.replace(old, new)


def render_recipe(
    *, listen_port: int, gateway_port: int, upstream_port: int, client_endpoints: bool
) -> str:
    """The shipped recipe with the test's ports (and the optional include switched on)."""
    text = RECIPE.read_text(encoding="utf-8")
    text = _replace_once(text, "    listen 80;", f"    listen 127.0.0.1:{listen_port};")
    text = _replace_once(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};")
    text = _replace_once(text, "server 127.0.0.1:3000;", f"server 127.0.0.1:{upstream_port};")
    include = f"include {CLIENT_ENDPOINTS};" if client_endpoints else _INCLUDE
    return _replace_once(text, _INCLUDE, include)


class Nginx:
    """One nginx master (and one worker) in ``workdir``, in the foreground."""

    def __init__(self, workdir: Path, site: str) -> None:
        self.workdir = workdir
        self.site = site
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed; scripts/test installs it (apt-get)")
        self.port = port
        self.workdir.mkdir(parents=True, exist_ok=True)
        temp = self.workdir / "temp"
        temp.mkdir(exist_ok=True)
        temp.chmod(0o777)  # run as root, the worker is "nobody" and buffers bodies here
        (self.workdir / "site.conf").write_text(self.site, encoding="utf-8")
        main = self.workdir / "nginx.conf"
        main.write_text(
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.workdir / 'nginx.pid'};\n"
            f"error_log {self.workdir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {self.workdir / 'access.log'};\n"
            f"  client_body_temp_path {temp / 'body'};\n"
            f"  proxy_temp_path {temp / 'proxy'};\n"
            f"  fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"  uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"  scgi_temp_path {temp / 'scgi'};\n"
            f"  include {self.workdir / 'site.conf'};\n"
            "}\n",
            encoding="utf-8",
        )
        check = subprocess.run(
            [binary, "-t", "-p", str(self.workdir), "-c", str(main)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the config:\n{check.stderr}")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(main)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start on port {port}:\n{self.errors()}")

    def errors(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGQUIT would wait for keep-alive clients; SIGTERM is nginx's fast shutdown."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
