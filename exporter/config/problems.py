"""pydantic's ValidationError as ``key.path: message`` lines: the one format of every validation problem.

Used wherever a pydantic model validates outside input: the config file, the web config file and the
webhook's payload. A problem keeps its key path (``streams.static[2].id``), so the operator finds the
line to fix; pydantic's internal steps (tagged unions, validators) are left out of the path.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("streams", "static", 2, "id")`` -> ``streams.static[2].id``; empty -> ``(top level)``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or "[" in part:
            continue  # pydantic's internal steps for tagged unions and validators
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def message(error: ErrorDetails) -> str:
    """pydantic's message in our words: "unknown key" for a key the model forbids, no "Value error, "."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")


def validation_problems(exc: ValidationError) -> list[str]:
    """Every problem, ``key.path: message``, in pydantic's order."""
    return [f"{key_path(e['loc'])}: {message(e)}" for e in exc.errors(include_url=False, include_input=False)]
