"""The typed snapshot: every source the runtime wires fills the Snapshot field of its name, with its type.

A source whose ``sample`` returns another type than its field declares would fail here, not in a scrape.
"""

from __future__ import annotations

import typing
from pathlib import Path

from exporter.config import parse_config
from exporter.runtime import build_runtime
from exporter.snapshot import RESULT_FIELDS, Snapshot


def test_each_wired_source_returns_the_type_of_its_snapshot_field(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text("")
    (tmp_path / "db.pass").write_text("unused\n")
    base = {"node": "n", "errors": {"logs": [{"path": str(tmp_path / "*.errors"), "stream": "7"}]},
            "progress": {"stats_log": str(tmp_path / "{stream}.log")}}
    with_log = {**base, "viewers": {"ports": [8080], "access_log": {"path": str(tmp_path / "access.log")}}}
    with_db = {**base, "viewers": {"ports": [8080], "access_log": None, "panel_db": {
        "schema": "xui", "user": "ro", "password_file": str(tmp_path / "db.pass")}}}
    wired = {}
    for config in (with_log, with_db):
        rt = build_runtime(parse_config(config), proc_root=None)  # built, never sampled: nothing is opened
        for source in (rt.sampler.processes, *rt.sampler.sources):
            wired[source.name] = source
    assert sorted(wired) == sorted(RESULT_FIELDS)  # every field has its source
    fields = typing.get_type_hints(Snapshot)
    for name, source in wired.items():
        returns = typing.get_type_hints(type(source).sample)["return"]
        assert fields[name] == returns | None, (name, returns, fields[name])
