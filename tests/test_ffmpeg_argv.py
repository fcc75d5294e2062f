"""Inputs, outputs and progress target of ffmpeg command lines (pure)."""

from __future__ import annotations

import shlex

import pytest

from exporter.sources.ffmpeg_argv import parse_ffmpeg_argv, peer_of


def test_values_are_not_outputs_and_flags_take_none() -> None:
    args = parse_ffmpeg_argv(shlex.split(
        "ffmpeg -y -re -user_agent 'A B' -headers 'Referer: x\r\n' -i http://o/index.m3u8 -an -c copy "
        "-f hls -hls_segment_filename /s/a_%03d.ts /s/a.m3u8 -f mpegts udp://239.0.0.1:1234"))
    assert args.inputs == ("http://o/index.m3u8",)
    assert args.outputs == ("/s/a_%03d.ts", "/s/a.m3u8", "udp://239.0.0.1:1234")
    assert args.playlist == "/s/a.m3u8" and args.progress is None and args.network_input


@pytest.mark.parametrize(("source", "network"), [
    ("http://p/live.ts", True), ("https://p/x.m3u8", True), ("rtmp://p/live/1", True), ("udp://@239.1.1.1:5000", True),
    ("/srv/vod/film.mp4", False), ("file:/srv/a.ts", False), ("testsrc=size=160x120", False), ("pipe:0", False),
])
def test_network_inputs(source: str, network: bool) -> None:
    assert parse_ffmpeg_argv(["ffmpeg", "-i", source, "out.m3u8"]).network_input is network


def test_peers_of_urls() -> None:
    assert peer_of("http://127.0.0.1:25500/progress.php?stream_id=12") == ("127.0.0.1", 25500)
    assert peer_of("rtmp://127.0.0.1/live/31?password=x") == ("127.0.0.1", 1935)
    assert peer_of("http://[::1]:8080/p") == ("::1", 8080)
    assert peer_of("/srv/a.m3u8") is None and peer_of("http://:bad") is None
