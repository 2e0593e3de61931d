"""DVC's own remote conformance suite (``dvc.testing.remote_tests.TestRemote``) against
secure:// over a local directory, with hidden names and with plain names (see conftest.py).

Upstream marks ``test_pull_00_prefix`` and ``test_pull_no_00_prefix`` as
``xfail(raises=NotImplementedError, strict=False)`` for remotes that cannot list by prefix.
A secure remote can, so they are re-declared here without the mark: an xfail would fail.
"""

from __future__ import annotations

from typing import Any

# not `from … import TestRemote`: pytest would collect the imported class a second time
import dvc.testing.remote_tests as upstream


def _stored(remote: Any) -> list[bytes]:
    return [p.read_bytes() for p in remote.storage.rglob("*") if p.is_file()]


class TestSecureRemote(upstream.TestRemote):
    def test_pull_00_prefix(self, tmp_dir: Any, dvc: Any, remote: Any,
                            monkeypatch: Any) -> None:
        super().test_pull_00_prefix(tmp_dir, dvc, remote, monkeypatch)
        stored = _stored(remote)
        assert len(stored) == 2 and all(b.startswith(b"DVCSEC") for b in stored)

    def test_pull_no_00_prefix(self, tmp_dir: Any, dvc: Any, remote: Any,
                               monkeypatch: Any) -> None:
        super().test_pull_no_00_prefix(tmp_dir, dvc, remote, monkeypatch)
        stored = _stored(remote)
        assert len(stored) == 2 and all(b.startswith(b"DVCSEC") for b in stored)


def test_suite_runs_the_prefix_tests_without_upstreams_xfail() -> None:
    for name in ("test_pull_00_prefix", "test_pull_no_00_prefix"):
        assert getattr(getattr(upstream.TestRemote, name), "pytestmark", None), (
            f"upstream no longer marks {name}: drop the re-declaration")
        assert not getattr(getattr(TestSecureRemote, name), "pytestmark", None)


def test_suite_covers_every_upstream_test() -> None:
    ours = {n for n in dir(TestSecureRemote) if n.startswith("test")}
    assert ours == {n for n in dir(upstream.TestRemote) if n.startswith("test")}
    assert len(ours) == 4
