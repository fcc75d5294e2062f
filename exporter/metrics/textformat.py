"""The Prometheus text format and OpenMetrics, byte for byte what prometheus_client writes, several times faster.

prometheus_client formats every sample on its own: sorts its labels, checks and escapes each label name
and value, calls ``str.format`` (about 8 µs a sample, 100 ms for a 500-stream node). Here a family's
label names are checked and ordered once into a ``%`` template; the lines of a family whose samples all
have the same shape (every per-stream family) are built with ``map`` over the whole family, so the loop
runs in C; label values are escaped only when one of them needs it; and a value is ``float.__repr__``
wherever Go's formatting (``floatToGoString``) agrees with it.

A sample line is the same in both formats for the families a snapshot makes, so a family is encoded
once into a :class:`Block` (its sample lines) and either format is its header plus those lines. A family
this fast path does not cover (timestamps, exemplars, ``_created`` samples, native histograms, a name
outside the legacy character set, an unusual type) is written by prometheus_client itself, so the output
never differs; ``tests/test_metrics_textformat.py`` compares the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import add, itemgetter
from typing import Any

from prometheus_client.exposition import generate_latest as _client_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as _client_openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _untyped_go_string
from prometheus_client.validation import METRIC_LABEL_NAME_RE

TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
              "unknown": "untyped"}
"""Types the fast path writes, and the name the Prometheus text format gives each."""
EOF = "# EOF\n"
_INF = math.inf
floatToGoString: Callable[[float], str] = _untyped_go_string
_NAME, _LABELS, _VALUE, _EXTRAS = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3, 4, 5)
_NO_EXTRAS = {(None, None, None)}
"""A sample without timestamp, exemplar or native histogram."""
_Pick = Callable[[dict[str, str]], Any]
"""Label values in sorted label-name order: a string for one label, a tuple for several (an itemgetter)."""


def go_float(value: float) -> str:
    """``floatToGoString``: ``repr`` below a million (where Go and Python agree), the client's code above."""
    d = float(value)
    if -_INF < d < 1e6:
        return repr(d)
    return floatToGoString(d)


def _plain(name: str, label: bool = False) -> bool:
    """Letters, digits and underscores (not a reserved ``__`` label): written unchanged by every escaping
    scheme the cache serves (a ``:`` is not, in OpenMetrics with the default escaping)."""
    return METRIC_LABEL_NAME_RE.match(name) is not None and not (label and name.startswith("__"))


def _needs_escape(text: str) -> bool:
    return "\\" in text or "\n" in text or '"' in text


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if openmetrics else text


@dataclass(frozen=True, slots=True)
class Block:
    """One family ready to write: its sample lines, or the client's own rendering of it in both formats."""

    name: str
    type: str
    unit: str
    documentation: str
    lines: str
    client: tuple[str, str] | None = None
    """(text, OpenMetrics without ``# EOF``) when the family is not on the fast path."""
    plain: bool = True
    """Every name in it is :func:`_plain`, so its bytes are the same under the ``allow-utf-8`` escaping."""

    def text(self) -> str:
        if self.client is not None:
            return self.client[0]
        name = self.name + "_total" if self.type == "counter" else self.name
        return (f"# HELP {name} {_escape_help(self.documentation, False)}\n"
                f"# TYPE {name} {TEXT_TYPES[self.type]}\n{self.lines}")

    def openmetrics(self) -> str:
        if self.client is not None:
            return self.client[1]
        unit = f"# UNIT {self.name} {self.unit}\n" if self.unit else ""
        return (f"# HELP {self.name} {_escape_help(self.documentation, True)}\n"
                f"# TYPE {self.name} {self.type}\n{unit}{self.lines}")


class _Single:
    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


def _by_client(metric: Metric) -> Block:
    one = _Single(metric)
    text = _client_text(one).decode("utf-8")
    om = _client_openmetrics(one).decode("utf-8")  # type: ignore[no-untyped-call]
    plain = _plain(metric.name) and all(
        _plain(s.name) and all(_plain(k, label=True) for k in s.labels) for s in metric.samples
    )
    return Block(metric.name, metric.type, metric.unit, metric.documentation, "", (text, om.removesuffix(EOF)), plain)


class _Unusual(Exception):
    """This family needs prometheus_client's own writer."""


class Encoder:
    """Encodes families into blocks; remembers label templates and escaped label values for one render."""

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}
        self._templates: dict[tuple[str, tuple[str, ...]], tuple[str, _Pick | None, int]] = {}

    def blocks(self, metrics: Iterable[Metric]) -> list[Block]:
        return [self.block(m) for m in metrics]

    def block(self, metric: Metric) -> Block:
        if metric.type not in TEXT_TYPES or not _plain(metric.name):
            return _by_client(metric)
        try:
            lines = self._lines(metric)
        except (_Unusual, TypeError, ValueError, AttributeError):
            return _by_client(metric)  # and whatever the client makes of it, an error included
        return Block(metric.name, metric.type, metric.unit, metric.documentation, lines)

    def _uniform(self, samples: list[Sample], special: set[str]) -> str | None:
        """The lines of a family whose samples share one name and one set of label names and carry nothing
        but a value (every per-stream family), built with ``map`` over the whole family: the loop runs in C,
        about 0.5 µs a line. None for any other family."""
        if not samples:
            return ""
        names = set(map(_NAME, samples))
        keys = set(map(tuple, map(_LABELS, samples)))
        if len(names) != 1 or len(keys) != 1 or set(map(_EXTRAS, samples)) != _NO_EXTRAS or names & special:
            return None
        name, key = names.pop(), keys.pop()
        found = self._templates.get((name, key))
        if found is None:
            found = self._templates[(name, key)] = self._template(name, key)
        template, pick, n = found
        floats = list(map(float, map(_VALUE, samples)))
        values = list(map(repr, floats))
        for i in [i for i, d in enumerate(floats) if not -_INF < d < 1e6]:
            values[i] = floatToGoString(floats[i])  # go_float's other branch
        if pick is None:
            return "".join(map(template.__mod__, values))
        picked = list(map(pick, map(_LABELS, samples)))
        if n == 1:
            if _needs_escape("".join(picked)):
                picked = list(map(_escape_value, picked))
            return "".join(map(template.__mod__, zip(picked, values, strict=True)))
        if _needs_escape("".join(map("".join, picked))):
            picked = [tuple(map(_escape_value, t)) for t in picked]
        return "".join(map(template.__mod__, map(add, picked, zip(values, strict=True))))

    def _template(self, name: str, keys: tuple[str, ...]) -> tuple[str, _Pick | None, int]:
        """``name{a="%s",b="%s"} %s\\n`` with the label names sorted, and how to pick the values in that order."""
        if not _plain(name) or not all(_plain(k, label=True) for k in keys):
            raise _Unusual(name)
        order = sorted(keys)
        if not keys:
            return name + " %s\n", None, 0
        labels = ",".join(f'{k}="%s"' for k in order)
        return f"{name}{{{labels}}} %s\n", itemgetter(*order), len(order)

    def _lines(self, metric: Metric) -> str:
        special = {metric.name + "_created", metric.name + "_gsum", metric.name + "_gcount"}
        uniform = self._uniform(metric.samples, special)
        if uniform is not None:
            return uniform
        escaped, templates = self._escaped, self._templates
        out: list[str] = []
        append = out.append
        for name, labels, value, timestamp, exemplar, native in metric.samples:  # a client with more fields: _Unusual
            if timestamp is not None or exemplar is not None or native is not None or name in special:
                raise _Unusual(metric.name)
            key = (name, tuple(labels))
            found = templates.get(key)
            if found is None:
                found = templates[key] = self._template(*key)
            template, pick, n = found
            v = go_float(value)
            if pick is None:
                append(template % v)
            elif n == 1:
                raw = pick(labels)
                e = escaped.get(raw)
                if e is None:
                    e = escaped[raw] = _escape_value(raw)
                append(template % (e, v))
            else:
                values = []
                for raw in pick(labels):
                    e = escaped.get(raw)
                    if e is None:
                        e = escaped[raw] = _escape_value(raw)
                    values.append(e)
                values.append(v)
                append(template % tuple(values))
        return "".join(out)


def text(blocks: Iterable[Block]) -> str:
    return "".join(b.text() for b in blocks)


def openmetrics(blocks: Iterable[Block], eof: bool = True) -> str:
    return "".join(b.openmetrics() for b in blocks) + (EOF if eof else "")
