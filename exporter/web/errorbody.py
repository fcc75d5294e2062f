"""The one shape of every error the exporter answers with: ``{"error": "<reason>"}``.

The webhook, the action and viewers APIs, the progress push and the web config's refusals all answer a
4xx or 5xx with this JSON object, so a client (or an operator with ``curl``) reads the reason from one
key. Extra keys carry what still answers despite the error (the circuits while the journal is down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


def error_body(reason: str, **extra: Any) -> dict[str, Any]:
    return {"error": reason, **extra}


def error_response(code: int, reason: str, *, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """A ``code`` answer with ``{"error": reason, **extra}``."""
    return JSONResponse(error_body(reason, **extra), status_code=code, headers=headers)
