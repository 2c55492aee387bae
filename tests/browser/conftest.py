"""Headless Chromium for ``dash_duo``: Debian's chromium + chromedriver, nothing downloaded.

``dash[testing]`` builds its Chrome driver from the options returned by the
``pytest_setup_options`` hook (``Browser._get_wd_options`` takes the first one)
and then calls ``webdriver.Chrome(options=...)`` without a service, so the driver
comes from ``PATH`` (selenium < 4.6) or from ``SE_CHROMEDRIVER`` / an offline
Selenium Manager (newer selenium). Both are pointed at the system binaries here.

Tests that need the browser are marked ``browser`` and skipped, with the reason,
when chromium or chromedriver is missing (``make browser-deps`` installs them).

Run them with::

    .venv/bin/python -m pytest --headless tests/browser
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1400,1000")
_PROFILES: list[str] = []
PROFILE_PREFIX = "deepscope-chrome-"  # + the pid of the pytest process that made it


def sweep_stale_profiles(tmp: Path | None = None) -> list[Path]:
    """Remove Chromium profiles of pytest processes that are gone (killed by a timeout: no sessionfinish)."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*"):
        pid = path.name[len(PROFILE_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def find_chromium() -> str | None:
    """Path of a Chromium binary (``$DASH_TEST_CHROMEPATH`` first), or None."""
    env = os.environ.get("DASH_TEST_CHROMEPATH")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_chromedriver() -> str | None:
    """Path of chromedriver (``$SE_CHROMEDRIVER`` first, then ``PATH``, then Debian's), or None."""
    env = os.environ.get("SE_CHROMEDRIVER")
    if env and Path(env).exists():
        return env
    found = shutil.which("chromedriver")
    if found:
        return found
    return "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None


CHROMIUM, CHROMEDRIVER = find_chromium(), find_chromedriver()
MISSING = None if CHROMIUM and CHROMEDRIVER else (
    "headless browser tests need chromium and chromedriver on PATH "
    f"(found chromium={CHROMIUM}, chromedriver={CHROMEDRIVER}); install them with `make browser-deps` "
    "(Debian: apt-get install chromium chromium-driver)")

if not MISSING:
    # Make every selenium version use the system driver and never fetch one.
    os.environ["SE_CHROMEDRIVER"] = CHROMEDRIVER
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ["DASH_TEST_CHROMEPATH"] = CHROMIUM
    driver_dir = str(Path(CHROMEDRIVER).parent)
    if driver_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = driver_dir + os.pathsep + os.environ.get("PATH", "")


def chrome_options():
    """Selenium ChromeOptions for a headless, offline, throw-away Chromium profile."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    if CHROMIUM:
        options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
    _PROFILES.append(profile)
    options.add_argument(f"--user-data-dir={profile}")
    return options


def pytest_setup_options():
    """dash.testing hook: the options its Browser starts Chromium with."""
    return chrome_options()


@pytest.fixture(autouse=True)
def _need_chromium(request):
    """Skip browser tests (before any browser starts) when Chromium is not installed."""
    if MISSING and request.node.get_closest_marker("browser"):
        pytest.skip(MISSING)


sweep_stale_profiles()  # at load: a sub-folder conftest does not see pytest_sessionstart


def pytest_sessionfinish(session, exitstatus):
    for profile in _PROFILES:
        shutil.rmtree(profile, ignore_errors=True)

