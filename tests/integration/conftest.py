"""Fixtures for the mixpeekfs integration tests.

Run from the repository root:

    /usr/bin/python3 -m pytest tests/integration

MIXPEEKFS_BIN overrides the binary (default build/src/mixpeekfs).
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mfs  # noqa: E402

# Sizes of the data sets the servers hold.
MAIN_COUNT = 1000
MAIN_SEED = 20240611
BIG_COUNT = 25000
BIG_SEED = 7
WEIRD_COUNT = 300
WEIRD_SEED = 99
WALK_COUNT = 5000
WALK_SEED = 19

DEFAULT_TEST_TIMEOUT = 180


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout(seconds): hard time limit of one test")
    config.addinivalue_line(
        "markers", "chaos: long randomized fault test; runs only when "
        "MIXPEEKFS_CHAOS_SECONDS is set (test_chaos.py)")


def _skip_reason():
    reason = mfs.fuse_unavailable_reason()
    if reason:
        return reason
    if not os.path.exists(mfs.SERVER_SCRIPT):
        return "test server %s is missing" % mfs.SERVER_SCRIPT
    if not os.access(mfs.mixpeekfs_bin(), os.X_OK):
        return "mixpeekfs binary %s is missing (build it or set " \
               "MIXPEEKFS_BIN)" % mfs.mixpeekfs_bin()
    return None


@pytest.fixture(scope="session")
def fuse_ok():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="mixpeekfs-it-")
    yield d
    # Leave nothing mounted below it, then remove it.
    for root, dirs, _files in os.walk(d):
        for name in dirs:
            full = os.path.join(root, name)
            if os.path.ismount(full):
                mfs.subprocess.run(["fusermount3", "-uz", full],
                                   capture_output=True, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def _start_server(workdir, name, **kw):
    """A test server; with the project's extra keys (description and
    times) unless told otherwise: most tests search and sort by them.
    test_published.py checks the published shape, the server's default."""
    kw.setdefault("extra_keys", True)
    return mfs.Server(os.path.join(workdir, name), **kw)


@pytest.fixture(scope="session")
def main_server(fuse_ok, workdir):
    srv = _start_server(workdir, "srv-main", count=MAIN_COUNT, seed=MAIN_SEED)
    yield srv
    srv.stop()


@pytest.fixture
def server(main_server):
    """The shared 1000-task server, reset (stats, log, faults, key,
    limits)."""
    main_server.reset()
    yield main_server
    if main_server.key != mfs.DEFAULT_KEY:
        main_server.set_key(mfs.DEFAULT_KEY)
    main_server.reset(dataset=True, faults=True, limits=True)


@pytest.fixture(scope="session")
def main_tasks(main_server):
    """The main server's tasks in its default order (from /_test/dataset)."""
    return main_server.dataset()


def _module_server(name, count, seed, **kw):
    """A fixture: a test server of its own for each test module."""
    @pytest.fixture(scope="module")
    def fixture(fuse_ok, workdir):
        srv = _start_server(workdir, name, count=count, seed=seed, **kw)
        yield srv
        srv.stop()
    return fixture


big_server = _module_server("srv-big", BIG_COUNT, BIG_SEED)
weird_server = _module_server("srv-weird", WEIRD_COUNT, WEIRD_SEED,
                              weird=True)
# test_walk.py: 5,000 tasks, about 400 of them IN_PROGRESS
walk_server = _module_server("srv-walk", WALK_COUNT, WALK_SEED)
# test_limits.py: the main data set, on a server of its own
limits_server = _module_server("srv-limits", MAIN_COUNT, MAIN_SEED)


class Mounter(object):
    """Creates mounts for one test and unmounts/checks them afterwards."""

    def __init__(self, base):
        self.base = base
        self.mounts = []
        self.n = 0

    def __call__(self, srv, url=None, **kw):
        """A mount of srv (of url instead, when given)."""
        self.n += 1
        mnt = os.path.join(self.base, "mnt%d" % self.n)
        m = mfs.Mount(mnt, url or srv.url, **kw)
        self.mounts.append(m)
        return m

    def finish(self):
        problems = []
        for m in self.mounts:
            try:
                problems.extend(m.unmount())
            finally:
                m.cleanup()
        return problems


@pytest.fixture
def mounter(request, fuse_ok, workdir):
    base = tempfile.mkdtemp(prefix="t-", dir=workdir)
    mt = Mounter(base)
    marker = request.node.get_closest_marker("timeout")
    seconds = marker.args[0] if marker else DEFAULT_TEST_TIMEOUT
    dog = mfs.Watchdog(seconds, mt.mounts)
    yield mt
    dog.cancel()
    problems = mt.finish()
    if dog.fired:
        pytest.fail("hard time limit of %ss hit: the mounts were killed"
                    % seconds)
    if problems:
        pytest.fail("teardown: " + "\n".join(problems))


@pytest.fixture
def mnt(server, mounter):
    """A fresh mount of the main server: page_size=100, ttl=600."""
    return mounter(server, page_size=100, ttl=600)


@pytest.fixture
def mountpoint(tmp_path):
    """An empty folder to mount on, unmounted (lazily) afterwards."""
    p = str(tmp_path / "mnt")
    os.mkdir(p)
    yield p
    if os.path.ismount(p):
        subprocess.run(["fusermount3", "-uz", p], capture_output=True,
                       timeout=30)
