"""exporter.web.auth: the bearer tokens of the API endpoints (the webhook's and the read-only viewer token)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from exporter.errors import TokenFileError
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


def test_a_token_that_could_not_be_read_is_read_again_at_the_next_request(tmp_path: Path) -> None:
    # The process out of file descriptors for a moment (a real RLIMIT_NOFILE: EMFILE) just as the rotated token
    # is read. The file did not change, so its stamp cannot say that it is readable again: the next request
    # must read it again (as the TokenFile before WatchedFile did), or every request is refused until
    # someone touches the file.
    path = tmp_path / "token"
    token = write_token(path)
    tf = BearerToken(path)
    tf.load()
    new = write_token(path, "rotated-" + token)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest = os.open(os.devnull, os.O_RDONLY)  # the next descriptor open() would give
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
    try:
        refused = tf.check(f"Bearer {new}")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not refused  # it could not be read: denied
    assert tf.check(f"Bearer {new}")  # descriptors free again: read, accepted
    assert tf.quick_check(f"Bearer {new}") is True


def test_load_names_the_key_and_same_secret_compares_contents(tmp_path: Path) -> None:
    viewer = BearerToken(tmp_path / "viewers.token", key="viewers.api.token_file", needed_by="the viewer API",
                         or_else="remove viewers.api")
    with pytest.raises(TokenFileError, match=r"^viewers\.api\.token_file: .*viewers\.token: does not exist: the "
                                             r"viewer API needs a token .*or remove viewers\.api\)$"):
        viewer.load()
    webhook = BearerToken(tmp_path / "token")
    secret = write_token(tmp_path / "token")
    webhook.load()
    assert not viewer.same_secret(webhook) and not webhook.same_secret(viewer)  # unusable is nobody's secret
    write_token(tmp_path / "viewers.token", "other-" + secret)
    viewer.load()
    assert not viewer.same_secret(webhook)
    write_token(tmp_path / "viewers.token", secret + "   ")  # the same token once stripped
    viewer.load()
    assert viewer.same_secret(webhook) and webhook.same_secret(viewer)
