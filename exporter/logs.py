"""Structured logs: logfmt (default) or JSON lines, one record per line, set up only by the CLI.

Every message and traceback goes through :func:`exporter.redact.redact` on its way out, so a stream URL
with a password in it (a path, an exception message, a command line) never reaches the log in clear.
"""

from __future__ import annotations

import json
import logging
import time

from exporter.redact import redact


class _RedactingFormatter(logging.Formatter):
    def message(self, record: logging.LogRecord) -> str:
        return redact(record.getMessage())

    def exception(self, record: logging.LogRecord) -> str | None:
        return redact(self.formatException(record.exc_info)) if record.exc_info else None


class LogfmtFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = self.message(record).replace('"', '\\"').replace("\n", "\\n")
        line = f'ts={ts} level={record.levelname.lower()} logger={record.name} msg="{msg}"'
        exc = self.exception(record)
        if exc is not None:
            line += ' exc="' + exc.replace('"', '\\"').replace("\n", "\\n") + '"'
        return line


class JSONFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.message(record),
        }
        exc = self.exception(record)
        if exc is not None:
            out["exc"] = exc
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
