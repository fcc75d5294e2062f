"""A real MariaDB server for the panel DB tests: ``mariadb-install-db`` into a temp dir, ``mariadbd`` on a unix socket
in it (no TCP), the panels' tables created as their install SQL defines them, a read-only account for the exporter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from tests.helpers import Proc, require_binary, wait_until

# XC_VM's src/bin/install/database.sql (XUI.one's is the same table): every column, key and type as there.
LINES_LIVE = """
CREATE TABLE `lines_live` (
  `activity_id` int(11) NOT NULL AUTO_INCREMENT,
  `user_id` int(11) DEFAULT NULL,
  `stream_id` int(11) DEFAULT NULL,
  `server_id` int(11) DEFAULT NULL,
  `proxy_id` int(11) DEFAULT NULL,
  `user_agent` varchar(255) DEFAULT NULL,
  `user_ip` varchar(39) DEFAULT NULL,
  `container` varchar(50) DEFAULT NULL,
  `pid` int(11) DEFAULT NULL,
  `active_pid` int(11) DEFAULT NULL,
  `date_start` int(11) DEFAULT NULL,
  `date_end` int(11) DEFAULT NULL,
  `geoip_country_code` varchar(22) DEFAULT NULL,
  `isp` varchar(255) DEFAULT NULL,
  `external_device` varchar(255) DEFAULT NULL,
  `divergence` float DEFAULT 0,
  `hls_last_read` int(11) DEFAULT NULL,
  `hls_end` tinyint(4) DEFAULT 0,
  `fingerprinting` tinyint(4) DEFAULT 0,
  `hmac_id` tinyint(4) DEFAULT NULL,
  `hmac_identifier` varchar(255) DEFAULT NULL,
  `uuid` varchar(32) DEFAULT NULL,
  PRIMARY KEY (`activity_id`),
  KEY `user_agent` (`user_agent`),
  KEY `user_ip` (`user_ip`),
  KEY `container` (`container`),
  KEY `pid` (`pid`),
  KEY `active_pid` (`active_pid`),
  KEY `geoip_country_code` (`geoip_country_code`),
  KEY `user_id` (`user_id`),
  KEY `stream_id` (`stream_id`),
  KEY `server_id` (`server_id`),
  KEY `date_start` (`date_start`),
  KEY `date_end` (`date_end`),
  KEY `hls_end` (`hls_end`),
  KEY `parent_id` (`proxy_id`) USING BTREE,
  KEY `fingerprinting` (`fingerprinting`),
  KEY `hmac_id` (`hmac_id`),
  KEY `hmac_identifier` (`hmac_identifier`),
  KEY `uuid` (`uuid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci
"""

# Xtream UI's bin/install/database.sql
USER_ACTIVITY_NOW = """
CREATE TABLE `user_activity_now` (
  `activity_id` int(11) NOT NULL AUTO_INCREMENT,
  `user_id` int(11) NOT NULL,
  `stream_id` int(11) NOT NULL,
  `server_id` int(11) NOT NULL,
  `user_agent` varchar(255) DEFAULT NULL,
  `user_ip` varchar(39) NOT NULL,
  `container` varchar(50) NOT NULL,
  `pid` int(11) DEFAULT NULL,
  `date_start` int(11) NOT NULL,
  `date_end` int(11) DEFAULT NULL,
  `geoip_country_code` varchar(22) NOT NULL,
  `isp` varchar(255) NOT NULL,
  `external_device` varchar(255) NOT NULL,
  `divergence` int(11) DEFAULT NULL,
  `hls_last_read` int(11) DEFAULT NULL,
  `hls_end` tinyint(4) NOT NULL DEFAULT 0,
  PRIMARY KEY (`activity_id`),
  KEY `user_agent` (`user_agent`),
  KEY `user_ip` (`user_ip`),
  KEY `container` (`container`),
  KEY `pid` (`pid`),
  KEY `geoip_country_code` (`geoip_country_code`),
  KEY `user_id` (`user_id`),
  KEY `stream_id` (`stream_id`),
  KEY `server_id` (`server_id`),
  KEY `date_start` (`date_start`),
  KEY `date_end` (`date_end`),
  KEY `hls_end` (`hls_end`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8
"""

# The subscriber tables, only the columns the exporter may read and the password it must not.
SUBSCRIBERS = {
    "xui": "CREATE TABLE `lines` (`id` int(11) NOT NULL AUTO_INCREMENT, `username` varchar(50) DEFAULT NULL, "
           "`password` varchar(50) DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "xtream": "CREATE TABLE `users` (`id` int(11) NOT NULL AUTO_INCREMENT, `username` varchar(50) NOT NULL, "
              "`password` varchar(50) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
}
LIVE = {"xui": ("lines_live", LINES_LIVE, "lines"), "xtream": ("user_activity_now", USER_ACTIVITY_NOW, "users")}
EXPORTER_USER = "iptv_exporter"
EXPORTER_PASSWORD = "r3ad-0nly-pa55"


@dataclass
class MariaDB:
    socket: Path
    proc: Proc

    def root(self, database: str | None = None) -> Any:
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", database=database,
                               autocommit=True)

    def execute(self, sql: str, args: Sequence[Any] | None = None, database: str | None = None) -> None:
        with self.root(database) as conn, conn.cursor() as cur:
            cur.execute(sql, args)

    def panel(self, schema: str, database: str) -> None:
        """The panel's database with its live table, subscriber table and the exporter's read-only account."""
        live, ddl, users = LIVE[schema]
        self.execute(f"CREATE DATABASE `{database}`")
        self.execute(ddl, database=database)
        self.execute(SUBSCRIBERS[schema], database=database)
        self.execute(f"CREATE USER IF NOT EXISTS '{EXPORTER_USER}'@'localhost' IDENTIFIED BY %s", [EXPORTER_PASSWORD])
        # The grants docs/sources.md tells operators to give: the live table, and two columns of the subscribers.
        self.execute(f"GRANT SELECT ON `{database}`.`{live}` TO '{EXPORTER_USER}'@'localhost'")
        self.execute(f"GRANT SELECT (`id`, `username`) ON `{database}`.`{users}` TO '{EXPORTER_USER}'@'localhost'")


@contextmanager
def mariadb(tmp: Path) -> Iterator[MariaDB]:
    datadir, socket = tmp / "data", tmp / "mysqld.sock"
    install = require_binary("mariadb-install-db")
    server = shutil.which("mariadbd", path=f"{os.environ.get('PATH', '')}:/usr/sbin") or require_binary("mariadbd")
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run([install, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
                    "--skip-test-db", *user], check=True, capture_output=True, timeout=180)
    proc = Proc([server, "--no-defaults", f"--datadir={datadir}", f"--socket={socket}", "--skip-networking",
                 f"--pid-file={tmp / 'mysqld.pid'}", "--innodb-buffer-pool-size=16M", *user],
                log=tmp / "mariadbd.log").start()
    db = MariaDB(socket, proc)
    try:
        def up() -> bool:
            if not proc.alive():
                raise AssertionError(f"mariadbd exited: {proc.output()[-2000:]}")
            if not socket.exists():
                return False
            try:
                db.root().close()
            except pymysql.err.OperationalError:
                return False
            return True

        wait_until(up, timeout=90, interval=0.3, what="mariadbd accepting connections")
        yield db
    finally:
        proc.stop(grace=20)
