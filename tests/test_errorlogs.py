from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import ConfigError, parse_config
from exporter.config.health import ErrorLog, Errors
from exporter.sources import SampleContext
from exporter.sources.errorlogs import CompiledLog, ErrorLogSource, ErrorsResult, classify, parse_line
from exporter.sources.processes_result import ProcessesResult, StreamProcesses


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


# PanelX as pm2 writes it (ecosystem.config.cjs: log_date_format 'YYYY-MM-DD HH:mm:ss Z', merge_logs) from the
# console.log / console.error calls of server/ffmpegManager.ts.
PANELX_OUT = """\
2026-12-06 07:00:00 +00:00: [FFmpeg] Starting stream 5...
2026-12-06 07:00:00 +00:00: [FFmpeg] Command: ffmpeg -hide_banner -loglevel warning -y -user_agent Mozilla/5.0 -i http://src/live.ts
2026-12-06 07:00:01 +00:00: [FFmpeg 5] HLS output started
2026-12-06 07:00:02 +00:00: [FFmpeg] HLS output ready: /home/panelx/webapp/streams/stream_5.m3u8
2026-12-06 07:00:05 +00:00: [FFmpeg 5] Viewer connected. Total: 1
2026-12-06 07:00:09 +00:00: [FFmpeg 5] Viewer connected. Total: 2
2026-12-06 07:01:00 +00:00: [FFmpeg 5] Viewer disconnected. Total: 1
2026-12-06 07:02:00 +00:00: [FFmpeg 5] Process exited with code 0, signal null
"""
PANELX_ERRORS = """\
2026-12-06 07:03:00 +00:00: [FFmpeg 5] ERROR: [http @ 0x55d5c0a0c3c0] HTTP error 404 Not Found
[in#0 @ 0x55d5c0a0b000] Error opening input: Server returned 404 Not Found
2026-12-06 07:03:01 +00:00: [FFmpeg 5] Failed to start: Error: spawn ffmpeg ENOENT
    at ChildProcess._handle.onexit (node:internal/child_process:284:19)
2026-12-06 07:03:02 +00:00: [FFmpeg 6] ERROR: [h264 @ 0x1] error while decoding MB 12 7, bytestream -5
[h264 @ 0x1] concealing 1210 DC, 1210 AC, 1210 MV errors in P frame
2026-12-06 07:03:03 +00:00: [cleanup] Error cleaning stale connections: Error: connect ECONNREFUSED
"""


def _count(tmp_path: Path, entries: list[dict[str, object]], files: dict[str, str],
           made: list[ErrorLogSource]) -> dict[str, dict[str, int]]:
    for name in files:
        (tmp_path / name).write_text("")
    source = ErrorLogSource(Errors.model_validate({"logs": entries}))
    made.append(source)
    run(source)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {s: dict(k) for s, k in run(source).streams.items()}


def test_panelx_status_chatter_is_not_an_error(tmp_path: Path, source_factory: list[ErrorLogSource]) -> None:
    """The false alert: PanelX's out.log (viewer counts, "HLS output started", clean exits) read with the panelx
    preset counted every status line as an error of kind other; a healthy stream scored 62.5 and
    IPTVStreamErrorRate fired. Neither preset counts any of those lines."""
    out = str(tmp_path / "out.log")
    assert _count(tmp_path, [{"preset": "panelx", "path": out}], {"out.log": PANELX_OUT}, source_factory) == {}
    assert _count(tmp_path, [{"preset": "panelx_exits", "path": out}], {"out.log": PANELX_OUT}, source_factory) == {}


def test_panelx_errors_and_exits(tmp_path: Path, source_factory: list[ErrorLogSource]) -> None:
    counts = _count(tmp_path, [{"preset": "panelx", "path": str(tmp_path / "error.log")},
                               {"preset": "panelx_exits", "path": str(tmp_path / "out.log")}],
                    {"error.log": PANELX_ERRORS,
                     "out.log": PANELX_OUT + "2026-12-06 07:04:00 +00:00: [FFmpeg 5] Process exited with code 8, "
                                             "signal null\n2026-12-06 07:05:00 +00:00: [FFmpeg 6] Process exited "
                                             "with code null, signal SIGKILL\n"},
                    source_factory)
    # 5: the 404 and the continuation line naming it; "Failed to start" is node's, not an ffmpeg ERROR line.
    # 6: the decode error and its continuation. The panel's own [cleanup] error belongs to no stream.
    assert counts == {"5": {"input": 2, "exit": 1}, "6": {"decode": 2, "exit": 1}}


def test_panelx_preset_paths() -> None:
    errors = ErrorLog.model_validate({"preset": "panelx"})
    exits = ErrorLog.model_validate({"preset": "panelx_exits"})
    assert (errors.path, exits.path) == ("/home/panelx/logs/error.log", "/home/panelx/logs/out.log")


def test_stream_from_path_and_noise() -> None:
    cfg = compiled(preset="xtream")
    # "2>> <streams>/<id>.errors" (includes/stream.php); the old preset looked for <id>_.errors and found none
    path = "/home/xtreamcodes/iptv_xtream_codes/streams/12.errors"
    assert cfg.stream_of_path(path) == "12"
    assert cfg.stream_of_path("/home/xtreamcodes/iptv_xtream_codes/streams/12_.m3u8") is None
    assert ErrorLog.model_validate({"preset": "xtream"}).path == "/home/xtreamcodes/iptv_xtream_codes/streams/*.errors"
    assert ErrorLog.model_validate({"preset": "xui"}).path == "/home/xui/content/streams/*.errors"
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
        parse_config({"errors": {"logs": [{"path": "/a.log"}, {"stream": "7"},
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
    return source.sample(SampleContext(1.0, MappingProxyType({}), procs))


def test_source_follows_globs_and_merges_exits(tmp_path: Path, source_factory: list[ErrorLogSource]) -> None:
    old = tmp_path / "12_.errors"
    old.write_text("Connection refused\n")  # history from before we started: not counted
    pm2 = tmp_path / "pm2.log"
    source = ErrorLogSource(Errors.model_validate({"logs": [
        {"path": str(tmp_path / "*_.errors"), "stream_from_path": r"(?P<stream>\d+)_\.errors$"},
        {"preset": "panelx", "path": str(pm2)},
        {"preset": "panelx_exits", "path": str(pm2)},
    ]}))
    source_factory.append(source)
    r = run(source, exits={"5": 1})
    assert r.streams == {"5": {"exit": 1}} and r.files == 3

    with old.open("a") as fh:
        fh.write("[http @ 0x1] HTTP error 404 Not Found\n[h264 @ 0x1] error while decoding MB 1 2\n"
                 "    Last message repeated 2 times\n")
    (tmp_path / "13_.errors").write_text("Server returned 5XX Server Error reply\nweird\n")  # new: from line 1
    at = "2026-12-06 07:00:00 +00:00: "
    pm2.write_text(f"{at}[FFmpeg 5] Process exited with code 8, signal null\n"
                   f"{at}[FFmpeg 5] Process exited with code 1, signal null\n"
                   f"{at}[FFmpeg 5] ERROR: End of file\n{at}unrelated\n")
    r = run(source, exits={"5": 1})
    assert dict(r.streams["12"]) == {"input": 1, "decode": 3}
    assert dict(r.streams["13"]) == {"input": 1, "other": 1}
    assert dict(r.streams["5"]) == {"exit": 2, "input": 1}  # two logged exits beat one seen: max, not sum
    r = run(source, exits={"5": 4})
    assert r.streams["5"]["exit"] == 4

    (tmp_path / "13_.errors").unlink()
    r = run(source)
    assert r.files == 3 and dict(r.streams["13"]) == {"input": 1, "other": 1}  # counts stay, file let go


def test_config_examples_in_docs_validate() -> None:
    import re

    import yaml

    from tests.helpers import REPO

    text = (REPO / "docs" / "sources.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        parse_config(yaml.safe_load(block))
