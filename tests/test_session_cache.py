"""The test session's own compilation cache (tests/conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_a_session_removes_the_caches_of_killed_sessions_and_its_own(tmp_path):
    """A session killed before its end leaves its cache directory; the next one removes
    it, leaves those of live sessions and names it does not know, and removes its own."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    abandoned = tmp_path / f"jrl-tests-jax-cache-{int(ended.stdout)}-a1b2c3"
    live = tmp_path / f"jrl-tests-jax-cache-{os.getpid()}-d4e5f6"
    unknown = tmp_path / "jrl-tests-jax-cache-g7h8i9"
    for directory in (abandoned, live, unknown):
        directory.mkdir()
        (directory / "entry").write_bytes(b"program")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    environment["TMPDIR"] = str(tmp_path)
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", str(TESTS / "test_session_cache.py")],
        capture_output=True, text=True, env=environment, cwd=TESTS.parent, timeout=300,
    )  # fmt: skip
    assert session.returncode == 0, session.stdout + session.stderr
    left = sorted(path.name for path in tmp_path.glob("jrl-tests-jax-cache-*"))
    assert left == sorted([live.name, unknown.name])
