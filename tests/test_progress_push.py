from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette

from exporter.config.health import Progress
from exporter.sources.progress import ProgressStore
from exporter.web.progress_push import ProgressPushReceiver

BLOCK = "frame={n}\nfps=25.00\nout_time_us={us}\ndup_frames=0\ndrop_frames=0\nspeed=1.00x\nprogress=continue\n"


def app(store: ProgressStore, **cfg: object) -> tuple[Starlette, ProgressPushReceiver]:
    receiver = ProgressPushReceiver(store, Progress.model_validate(cfg), clock=lambda: 42.0)
    return Starlette(routes=list(receiver.routes())), receiver


async def chunks(*parts: str) -> AsyncIterator[bytes]:
    for part in parts:
        yield part.encode()


def post(app: Starlette, url: str, body: AsyncIterator[bytes] | bytes, client: str = "127.0.0.1") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as c:
            return await c.post(url, content=body)

    return asyncio.run(go())


def test_push_by_path_split_anywhere_with_garbage() -> None:
    store = ProgressStore()
    a, receiver = app(store)
    body = BLOCK.format(n=10, us=400000) + "garbage line\n" + BLOCK.format(n=35, us=1400000)
    r = post(a, "/progress/7", chunks(body[:7], body[7:50], body[50:51], body[51:]))
    assert r.status_code == 204
    streams, skipped, rejected = store.read()
    assert streams["7"].frames_total == 35 and streams["7"].updated_at == 42.0
    assert streams["7"].out_time_seconds == 1.4
    assert skipped == 1 and rejected == {}
    assert receiver.active == 0


def test_push_by_xtream_query() -> None:
    store = ProgressStore()
    a, _ = app(store)
    assert post(a, "/progress.php?stream_id=12", BLOCK.format(n=5, us=0).encode()).status_code == 204
    assert post(a, "/progress.php?stream_id=12", BLOCK.format(n=3, us=0).encode()).status_code == 204
    streams, _, _ = store.read()
    assert streams["12"].frames_total == 8  # two pushes are two ffmpeg runs
    assert streams["12"].runs == 2


def test_push_by_xui_query() -> None:
    """XUI.one / XC_VM start ffmpeg with ``-progress http://127.0.0.1:<port>/progress?stream_id=<id>``
    (includes/xc_vm.php): before, that path was a silent 404 and the stream had no progress."""
    store = ProgressStore()
    a, _ = app(store)
    assert post(a, "/progress?stream_id=31", BLOCK.format(n=9, us=0).encode()).status_code == 204
    assert post(a, "/progress?stream_id=../31", b"").status_code == 400
    assert post(a, "/progress?stream_id=31", b"", client="192.0.2.9").status_code == 403
    streams, _, _ = store.read()
    assert streams["31"].frames_total == 9


def test_refusals() -> None:
    store = ProgressStore(max_streams=1)
    a, _ = app(store)
    forbidden = post(a, "/progress/7", b"", client="192.0.2.9")
    assert (forbidden.status_code, forbidden.json()) == (
        403, {"error": "forbidden: progress.allow_from does not include this client"})
    bad = post(a, "/progress.php?stream_id=../x", b"")
    assert (bad.status_code, bad.json()) == (400, {"error": "bad stream id"})  # the one error shape
    assert post(a, "/progress.php", b"").status_code == 400
    assert post(a, "/progress/7", b"").status_code == 204
    full = post(a, "/progress/8", b"")
    assert (full.status_code, full.json()) == (429, {"error": "too many streams"})
    _, _, rejected = store.read()
    assert rejected == {"forbidden": 1, "bad_stream": 2, "full": 1}


def test_allow_from_other_networks_and_mapped_loopback() -> None:
    store = ProgressStore()
    a, _ = app(store, allow_from=["10.0.0.0/8"])
    assert post(a, "/progress/7", b"", client="10.1.2.3").status_code == 204
    assert post(a, "/progress/7", b"", client="127.0.0.1").status_code == 403
    a, _ = app(store)
    assert post(a, "/progress/7", b"", client="::ffff:127.0.0.1").status_code == 204
    assert post(a, "/progress/7", b"", client="::1").status_code == 204


def test_push_paths_skip_basic_auth_but_metrics_do_not() -> None:
    import bcrypt

    from exporter.config import parse_config
    from exporter.runtime import build_runtime
    from exporter.web.app import create_app
    from exporter.web.webconfig import WebConfigFile

    rt = build_runtime(parse_config({"streams": {"discover": []}, "viewers": {"ports": [], "access_log": None}}))
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = WebConfigFile.model_validate({"basic_auth_users": {"prom": hashed}})
    a = create_app(rt.sampler, rt.registry, components=rt.components, web_config=web)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=a, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as c:
            body = BLOCK.format(n=5, us=0).encode()
            return [(await c.post("/progress/7", content=body)).status_code,
                    (await c.post("/progress.php?stream_id=8", content=body)).status_code,
                    (await c.post("/progress?stream_id=9", content=body)).status_code,
                    (await c.get("/progress-not-a-route")).status_code,
                    (await c.get("/metrics")).status_code]

    assert asyncio.run(go()) == [204, 204, 204, 401, 401]
