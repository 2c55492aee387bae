"""The browser tests leave no Chromium profiles behind, even after a pytest killed by a timeout."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.browser.conftest import PROFILE_PREFIX, sweep_stale_profiles


def test_th001_profiles_of_dead_pytest_processes_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    gone = tmp_path / f"{PROFILE_PREFIX}{dead}-abc123"
    mine = tmp_path / f"{PROFILE_PREFIX}{os.getpid()}-def456"
    other = tmp_path / "deepscope-chrome-notapid"
    for folder in (gone, mine, other):
        (folder / "Default").mkdir(parents=True)
    assert sweep_stale_profiles(tmp_path) == [gone]
    assert not gone.exists() and mine.exists() and other.exists()
