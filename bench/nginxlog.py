"""A realistic nginx ``combined`` access log of an IPTV host, generated (shared/examples/nginx-combined.log).

The mix: HLS segments ``/streams/stream_<id>_<n>.ts`` (most lines, most bytes), playlists and MPEG-TS
through ``/live/<user>/<password>/<id>.(m3u8|ts)``, 403s for wrong passwords, 404s, 502s, panel API calls,
streams not in the inventory, TLS garbage on the plain port, and a share of IPv6 clients. Clients come
from 198.18.0.0/15 and 2001:db8::/32 (benchmark and documentation ranges: this is text, nothing is sent).
Request times run up to ``end`` at the log's rate, so the last minute of the log is "now" for the viewers.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from exporter.demo.logline import clf_time, combined

AGENTS = [
    "VLC/3.0.20 LibVLC/3.0.20", "IPTVSmartersPlayer", "okhttp/4.9.2", "Lavf/58.76.100",
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) Version/6.0 TV Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; MiBOX4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0 Mobile Safari/537.36",
    "TiviMate/4.7.0 (Android 11)", "Kodi/20.2 (X11; Linux x86_64) App_Bitness/64 Version/20.2",
]


def _clients(rng: random.Random, count: int) -> list[tuple[str, str, str, str]]:
    out = []
    for i in range(count):
        if rng.random() < 0.15:
            ip = f"2001:db8:{rng.randrange(64):x}::{rng.randrange(1, 0xFFFF):x}"
        else:
            c = rng.randrange(512)
            ip = f"198.{18 + c // 256}.{c % 256}.{rng.randrange(1, 255)}"
        out.append((ip, f"line{i % (count // 2 or 1)}", f"pw{rng.randrange(10**6):06d}", rng.choice(AGENTS)))
    return out


def generate(path: Path, lines: int, streams: int, *, end: float | None = None, rate: float = 300.0,
             clients: int = 20_000, seed: int = 9) -> int:
    """Write ``lines`` lines for streams ``1..streams``; returns the file's size in bytes."""
    # The same clients watching the same channels in every chunk of one workload (seeded apart from the
    # chunk), so a log appended round after round shows viewers who stay, as a real one does.
    pool_rng = random.Random(f"clients-{clients}-{streams}")
    pool = _clients(pool_rng, clients)
    # A few popular channels and a long tail, as on a real host.
    weights = [1.0 / (k ** 0.8) for k in range(1, streams + 1)]
    watching = pool_rng.choices(range(1, streams + 1), weights=weights, k=clients)
    rng = random.Random(seed)
    end = time.time() if end is None else end
    start = end - lines / rate
    kinds = rng.choices(
        ["seg", "m3u8", "ts", "seg404", "403", "502", "api", "garbage", "other", "unknown"],
        weights=[58, 20, 5, 4, 3, 2, 3, 1, 2, 2], k=lines,
    )
    who = [rng.randrange(clients) for _ in range(lines)]
    out: list[str] = []
    size = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        last_sec, stamp = -1, ""
        for i in range(lines):
            t = start + i / rate
            if int(t) != last_sec:
                last_sec, stamp = int(t), clf_time(t)
            c = who[i]
            ip, user, pw, agent = pool[c]
            sid = watching[c]
            kind = kinds[i]
            if kind == "seg":
                req, code, nb = f"GET /streams/stream_{sid}_{(last_sec // 10) % 1000}.ts HTTP/1.1", 200, \
                    rng.randrange(900_000, 2_100_000)
            elif kind == "m3u8":
                req, code, nb = f"GET /live/{user}/{pw}/{sid}.m3u8 HTTP/1.1", 200, rng.randrange(350, 480)
            elif kind == "ts":
                req, code, nb = f"GET /live/{user}/{pw}/{sid}.ts HTTP/1.1", 200, rng.randrange(100_000, 9_000_000)
            elif kind == "seg404":
                req, code, nb = f"GET /streams/stream_{sid}_{rng.randrange(1000)}.ts HTTP/1.1", 404, 153
            elif kind == "403":
                req, code, nb = f"GET /live/{user}/wrongpass/{sid}.ts HTTP/1.1", 403, 0
            elif kind == "502":
                req, code, nb = f"GET /live/{user}/{pw}/{sid}.ts HTTP/1.1", 502, 157
            elif kind == "api":
                req, code, nb = (f"GET /player_api.php?username={user}&password={pw}&action=get_live_streams "
                                 "HTTP/1.1"), 200, 48211
            elif kind == "garbage":
                ip, agent = "-", "-"
                req, code, nb = "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03", 400, 157
            elif kind == "other":
                req, code, nb = "GET /favicon.ico HTTP/1.1", 404, 153
            else:
                req, code, nb = f"GET /live/{user}/{pw}/{90000 + sid}.m3u8 HTTP/1.1", 404, 153
            referer = "http://player.example/" if agent.startswith("Mozilla") else "-"
            out.append(combined(ip, stamp, req, code, nb, referer, agent))
            if len(out) >= 10_000:
                chunk = "".join(out)
                size += fh.write(chunk)
                out.clear()
        size += fh.write("".join(out))
    return size
