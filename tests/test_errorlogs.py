from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import ConfigError, parse_config
from exporter.config.health import ErrorLog, Errors
from exporter.sources import SampleContext
from exporter.sources.errorlogs import CompiledLog, ErrorLogSource, ErrorsResult, classify, parse_line
from exporter.sources.processes import ProcessesResult, StreamProcesses


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("[tcp @ 0x559c3afa3740] Connection to tcp://127.0.0.1:18778 failed: Connection refused", "input"),
        ("[http @ 0x55d5c0a0c3c0] HTTP error 404 Not Found", "input"),
        ("http://provider.example/live/u/p/1234.ts: Server returned 404 Not Found", "input"),
        ("http://provider.example/live/1.ts: Server returned 5XX Server Error reply", "input"),
        ("http://provider.example/live/1.ts: Server returned 403 Forbidden (access denied)", "input"),
        ("[http @ 0x1] Will reconnect at 652548 in 1 second(s), error=Input/output error.", "input"),
        ("[http @ 0x1] Stream ends prematurely at 652548, should be 18446744073709551615", "input"),
        ("http://provider.example/live/1.ts: Connection timed out", "input"),
        ("[tcp @ 0x1] Failed to resolve hostname provider.example: Name or service not known", "input"),
        ("http://127.0.0.1:1/live.ts: I/O error", "input"),
        ("[mpegts @ 0x1] End of file", "input"),
        ("[h264 @ 0x1] error while decoding MB 12 7, bytestream -5", "decode"),
        ("[h264 @ 0x1] concealing 1210 DC, 1210 AC, 1210 MV errors in P frame", "decode"),
        ("[mpegts @ 0x1] Packet corrupt (stream = 0, dts = 1234).", "decode"),
        ("[hls @ 0x1] Application provided invalid, non monotonically increasing dts to muxer in stream 0: 5 >= 3",
         "decode"),
        ("[mp4 @ 0x1] Non-monotonous DTS in output stream 0:1; previous: 1, current: 0; changing to 2.", "decode"),
        ("Error while decoding stream #0:0: Invalid data found when processing input", "decode"),
        ("[mpegts @ 0x1] Continuity check failed for pid 256 expected 3 got 5", "decode"),
        ("Process exited with code 8", "exit"),
        ("Conversion failed!", "exit"),
        ("[hls @ 0x1] Failed to open file '/srv/x.ts' for writing: disk full", "other"),
        ("[aac @ 0x1] Queue input is backward in time", "decode"),
        ("Something unexpected happened", "other"),
    ],
)
def test_classify(line: str, kind: str) -> None:
    assert classify(line) == kind


def compiled(**kw: object) -> CompiledLog:
    return CompiledLog.of(ErrorLog.model_validate({"path": "/x.log", **kw}))


def test_panelx_pm2_lines() -> None:
    cfg = compiled(preset="panelx")
    assert parse_line("[FFmpeg 5] Process exited with code 8", cfg, None).kind == "exit"
    assert parse_line("[FFmpeg 5] Process exited with code 8", cfg, None).stream == "5"
    line = parse_line("[FFmpeg 12] [http @ 0x1] HTTP error 404 Not Found", cfg, None)
    assert (line.stream, line.kind) == ("12", "input")
    assert parse_line("Server listening on port 5000", cfg, None).kind is None  # not an ffmpeg line
    assert parse_line("[FFmpeg 5]     Last message repeated 3 times", cfg, None).repeat == 3


def test_stream_from_path_and_noise() -> None:
    cfg = compiled(preset="xtream")
    path = "/home/xtreamcodes/iptv_xtream_codes/streams/12_.errors"
    assert cfg.stream_of_path(path) == "12"
    assert parse_line("Connection refused", cfg, "12").kind == "input"
    for noise in ("", "frame=  251 fps= 25 q=-1.0 size=N/A time=00:00:10.04 bitrate=N/A speed=1x",
                  "Input #0, mpegts, from 'http://x/1.ts':", "  Stream #0:0[0x100]: Video: h264",
                  "[hls @ 0x1] Opening '/srv/12_3.ts' for writing"):
        assert parse_line(noise, cfg, "12").kind is None, noise


def test_ignore_and_bad_stream_ids() -> None:
    cfg = compiled(stream="7", ignore="deprecated pixel format")
    assert parse_line("[swscaler @ 0x1] deprecated pixel format used", cfg, "7").kind is None
    cfg = compiled(line=r"^\[(?P<stream>[^\]]+)\] (?P<message>.*)")
    assert parse_line("[../../etc] Connection refused", cfg, None).stream is None  # not a valid stream id


def test_config_errors_have_key_paths() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"errors": {"logs": [{"path": "/a.log"}, {"preset": "panelx"},
                                          {"path": "/b", "stream_from_path": "no-group"}]},
                      "progress": {"allow_from": ["not-a-net"], "colour": 1}})
    text = str(err.value)
    assert "errors.logs[0]: say whose errors these are" in text
    assert "errors.logs[1]: path is required" in text
    assert "errors.logs[2]: regular expression needs the named group(s) stream" in text
    assert "progress.allow_from[0]" in text
    assert "progress.colour: unknown key" in text


@pytest.fixture
def source_factory() -> Iterator[list[ErrorLogSource]]:
    made: list[ErrorLogSource] = []
    yield made
    for s in made:
        s.close()


def run(source: ErrorLogSource, exits: dict[str, int] | None = None) -> ErrorsResult:
    procs = None
    if exits is not None:
        procs = ProcessesResult({s: StreamProcesses(s, (), None, 0, 0, 0, 0, 0, 0, n, None, None)
                                 for s, n in exits.items()}, 0)
    results = MappingProxyType({"processes": procs} if procs else {})
    return source.sample(SampleContext(1.0, MappingProxyType({}), results))


def test_source_follows_globs_and_merges_exits(tmp_path: Path, source_factory: list[ErrorLogSource]) -> None:
    old = tmp_path / "12_.errors"
    old.write_text("Connection refused\n")  # history from before we started: not counted
    pm2 = tmp_path / "pm2.log"
    source = ErrorLogSource(Errors.model_validate({"logs": [
        {"path": str(tmp_path / "*_.errors"), "stream_from_path": r"(?P<stream>\d+)_\.errors$"},
        {"preset": "panelx", "path": str(pm2)},
    ]}))
    source_factory.append(source)
    r = run(source, exits={"5": 1})
    assert r.streams == {"5": {"exit": 1}} and r.files == 2

    with old.open("a") as fh:
        fh.write("[http @ 0x1] HTTP error 404 Not Found\n[h264 @ 0x1] error while decoding MB 1 2\n"
                 "    Last message repeated 2 times\n")
    (tmp_path / "13_.errors").write_text("Server returned 5XX Server Error reply\nweird\n")  # new: from line 1
    pm2.write_text("[FFmpeg 5] Process exited with code 8\n[FFmpeg 5] Process exited with code 1\n"
                   "[FFmpeg 5] End of file\nunrelated\n")
    r = run(source, exits={"5": 1})
    assert dict(r.streams["12"]) == {"input": 1, "decode": 3}
    assert dict(r.streams["13"]) == {"input": 1, "other": 1}
    assert dict(r.streams["5"]) == {"exit": 2, "input": 1}  # two logged exits beat one seen: max, not sum
    r = run(source, exits={"5": 4})
    assert r.streams["5"]["exit"] == 4

    (tmp_path / "13_.errors").unlink()
    r = run(source)
    assert r.files == 2 and dict(r.streams["13"]) == {"input": 1, "other": 1}  # counts stay, file let go


def test_config_examples_in_docs_validate() -> None:
    import re

    import yaml

    from tests.helpers import REPO

    text = (REPO / "docs" / "sources.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        parse_config(yaml.safe_load(block))
