"""exporter.web.auth: the one bearer token of every API endpoint."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.web.auth import BearerToken
from tests.actions_support import write_token


def test_quick_check_on_the_loop_and_check_after_a_change(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = write_token(path)
    tf = BearerToken(path)
    assert tf.quick_check(f"Bearer {token}") is None  # never read: the caller must check() in a thread
    tf.load()
    assert tf.quick_check(f"Bearer {token}") is True
    assert tf.quick_check(f"bearer  {token} ") is True
    for header in (None, "", "Bearer", "Bearer ", f"Basic {token}", f"Bearer {token}x", token):
        assert tf.quick_check(header) is False, header
    new = write_token(path, "rotated-" + token)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert tf.quick_check(f"Bearer {new}") is None  # changed: not trusted until re-read
    assert tf.check(f"Bearer {new}") and tf.quick_check(f"Bearer {new}") is True
    assert tf.quick_check(f"Bearer {token}") is False
    path.unlink()
    assert tf.quick_check(f"Bearer {new}") is None and not tf.check(f"Bearer {new}")
    assert tf.quick_check(f"Bearer {new}") is None  # unusable stays unusable until the file is back
