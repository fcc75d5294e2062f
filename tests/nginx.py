"""A real nginx under a test's own directory: the shared top of nginx.conf, and nginx started in the foreground.

Every nginx-backed test needs the same frame (its pid, error log and temp files under the test's root; as root,
``user root;`` so workers can read the test's files) around its own ``http { }`` directives and servers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.helpers import Proc, require_binary

FRAME = """{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
{http}}}
"""


def write_nginx_conf(root: Path, http: str, *, connections: int = 256) -> Path:
    """``root/nginx.conf``: the frame around ``http`` (directives and servers, indented as inside ``http {}``)."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(FRAME.format(user="user root;" if os.geteuid() == 0 else "", root=root, connections=connections,
                                 http=http))
    return conf


def start_nginx(root: Path) -> Proc:
    """nginx on ``root/nginx.conf`` in the foreground (stopped with the returned Proc), output in nginx.out."""
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or require_binary("nginx")
    return Proc([binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                log=root / "nginx.out").start()
