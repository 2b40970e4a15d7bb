"""Option values, the mountpoint and the command line (issue 11, items 6,
7, 8 and 13): every refusal is one line on the terminal, exit status 1,
before the API is asked."""

import os
import subprocess

import pytest

import mfs

# (option, lowest, highest, just below, just above); None: no such value
RANGES = [
    ("page_size", "1", "1000", "0", "1001"),
    ("ttl", "1", "86400", "0", "86401"),
    ("ttl_terminal", "1", "604800", "0", "604801"),
    ("max_connections", "1", "8", "0", "9"),
    ("timeout", "1", "3600", "0", "3601"),
    ("connect_timeout", "1", "600", "0", "601"),
    ("retries", "0", "10", None, "11"),
    ("max_response", "1M", "1G", "1048575", "1025M"),
    ("cache_size", "16M", "64G", "16383K", "65537M"),
    ("wait_max", "1", "604800", "0", "604801"),
]
RANGE_OF = {r[0]: (r[1], r[2]) for r in RANGES}

# Values that the old parser turned into others, and their like.
BAD = ["ttl=-1", "timeout=-3", "connect_timeout=-1", "ttl=1e3",
       "page_size=10x", "ttl=99999999999999999999", "page_size=-5",
       "page_size=abc", "ttl=+5", "ttl= 5", "ttl=", "retries=-1",
       "ttl_terminal=-1", "max_connections=-1", "max_response=-1M",
       "max_response=10x", "cache_size=16MB", "cache_size=1.5G",
       "cache_size=99999999999999999999G", "ttl=0x10"]


def unreachable():
    return "http://127.0.0.1:%d" % mfs.free_port()


def one_line(r):
    lines = r.err.splitlines()
    assert len(lines) == 1, "not one line: %r" % r.err
    return lines[0]


def refused_value(mountpoint, option, value, url=None):
    """Run with option=value: refused, naming the option, its range and
    the value as written (by default the URL is unreachable, so that a
    value let through fails otherwise)."""
    r = mfs.run_fail(["-o", "url=%s,retries=0,%s=%s" % (url or unreachable(),
                                                    option, value),
                  mountpoint])
    line = one_line(r)
    assert r.returncode == 1, r.returncode
    assert line.startswith("mixpeekfs: %s must be " % option), line
    assert ", not '%s'" % value in line, line
    low, high = RANGE_OF[option]
    assert " from %s to %s" % (low, high) in line, line
    assert not mfs.mounted(mountpoint)
    return line


def accepted_value(mountpoint, option, value):
    """option=value passes the checks: the run gets as far as the API."""
    extra = "timeout=1" if option == "retries" else "retries=0"
    r = mfs.run_fail(["-o", "url=%s,%s,%s=%s" % (unreachable(), extra, option,
                                             value), mountpoint])
    assert "cannot reach the API" in one_line(r), r.err
    assert not mfs.mounted(mountpoint)


@pytest.mark.parametrize("bad", BAD)
def test_bad_number_refused_as_written(server, mountpoint, bad):
    option, value = bad.split("=", 1)
    refused_value(mountpoint, option, value, url=server.url)
    assert server.requests()["total"] == 0      # before the API probe


@pytest.mark.parametrize("option,low,high,below,above", RANGES,
                         ids=[r[0] for r in RANGES])
def test_range_edges(fuse_ok, mountpoint, option, low, high, below, above):
    accepted_value(mountpoint, option, low)
    accepted_value(mountpoint, option, high)
    for value in (below, above):
        if value is not None:
            refused_value(mountpoint, option, value)


@pytest.mark.parametrize("bad,why", [
    ("ttl=0", "every stat would fetch a whole listing"),
    ("cache_size=1", "fetch them again"),
])
def test_minimum_says_why(fuse_ok, mountpoint, bad, why):
    line = refused_value(mountpoint, *bad.split("="))
    assert why in line, line


def test_cache_size_minimum(fuse_ok, mountpoint):
    accepted_value(mountpoint, "cache_size", "16M")
    accepted_value(mountpoint, "cache_size", "16384k")
    accepted_value(mountpoint, "cache_size", str(16 << 20))
    for value in ("1", "40K", "16383K", str((16 << 20) - 1)):
        refused_value(mountpoint, "cache_size", value)


def test_regular_file_as_mountpoint_refused(server, tmp_path):
    path = str(tmp_path / "file")
    with open(path, "w") as f:
        f.write("x\n")
    try:
        r = mfs.run_fail(["-o", "url=" + server.url, path])
        line = one_line(r)
        assert r.returncode == 1
        assert "'%s'" % path in line and "regular file" in line, line
        assert server.requests()["total"] == 0  # before the API probe
    finally:
        if mfs.mounted(path):
            subprocess.run(["fusermount3", "-uz", path], timeout=30)
    assert not mfs.mounted(path)


def test_second_mount_refused_naming_the_first(server, mounter, main_tasks):
    m = mounter(server)
    host = server.url.split("://", 1)[1].rsplit(":", 1)[0]
    server.reset()
    r = mfs.run_mixpeekfs(["-o", "url=" + server.url, m.path])
    try:
        r.err = r.stderr.decode(errors="replace")
        assert r.returncode == 1, r.err
        line = one_line(r)
        assert "fuse.mixpeekfs mixpeekfs:%s" % host in line, line
        assert "'%s'" % m.path in line, line
        assert server.requests()["total"] == 0  # before the API probe
    finally:
        if r.returncode == 0:           # the old code stacked a mount
            subprocess.run(["fusermount3", "-u", m.path], timeout=30)
    # the first mount still serves
    assert len(os.listdir(m.p("tasks"))) == len(main_tasks)


def test_nonempty_mountpoint_warned(server, mountpoint, main_tasks):
    with open(os.path.join(mountpoint, "hidden"), "w") as f:
        f.write("x\n")
    r = mfs.run_mixpeekfs(["-o", "url=" + server.url, mountpoint])
    err = r.stderr.decode(errors="replace")
    try:
        assert r.returncode == 0, err
        assert err.splitlines()[0] == (
            "mixpeekfs: warning: '%s' is not empty: what it holds is "
            "hidden while mixpeekfs is mounted there" % mountpoint), err
        assert "hidden" not in os.listdir(mountpoint)
        assert len(os.listdir(os.path.join(mountpoint, "tasks"))) == \
            len(main_tasks)
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], timeout=30)
    assert os.listdir(mountpoint) == ["hidden"]


@pytest.mark.parametrize("args,shown", [
    (["-o", "bogus=1"], "unknown option 'bogus=1'"),
    (["-o", "ttl=5,bogus=1,nope"], "unknown options 'bogus=1,nope'"),
])
def test_unknown_option_in_one_line(server, mountpoint, args, shown):
    r = mfs.run_fail(["-o", "url=" + server.url] + args + [mountpoint])
    assert r.returncode == 1
    assert r.err == "mixpeekfs: %s (see mixpeekfs --help)\n" % shown, r.err
    assert server.requests()["total"] == 0      # before the API probe
    assert not mfs.mounted(mountpoint)


def test_positional_url_and_url_option(server, mountpoint, main_tasks):
    other = unreachable()
    try:
        r = mfs.run_fail([server.url, "-o", "url=" + other, mountpoint])
        line = one_line(r)
        assert r.returncode == 1
        assert server.url in line and other in line, line
        assert server.requests()["total"] == 0
    finally:
        if mfs.mounted(mountpoint):     # the old code took one silently
            subprocess.run(["fusermount3", "-u", mountpoint], timeout=30)
    assert not mfs.mounted(mountpoint)
    # the same URL both ways is fine
    r = mfs.run_mixpeekfs([server.url, "-o", "url=" + server.url,
                           mountpoint])
    try:
        assert r.returncode == 0, r.stderr
        assert len(os.listdir(os.path.join(mountpoint, "tasks"))) == \
            len(main_tasks)
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], timeout=30)
