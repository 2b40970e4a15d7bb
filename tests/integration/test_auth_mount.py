"""Authentication, key files, and mount-time failures."""

import errno
import os
import subprocess

import pytest

import mfs
from mfs import ids_where


def opts(url, *more):
    return ",".join(["url=" + url, "page_size=100", "ttl=600"] + list(more))


def assert_not_mounted(path):
    assert not os.path.ismount(path), "%s is mounted" % path


def test_eacces_after_key_change(server, mnt, main_tasks):
    failed = ids_where(main_tasks, status="FAILED")
    assert len(os.listdir(mnt.p("by-status", "FAILED"))) == len(failed)
    if not server.set_key("sk_test_rotated_key"):
        pytest.skip("the test server has no POST /_test/key")
    try:
        before = server.requests()
        e = mfs.errno_of(os.listdir, mnt.p("by-status", "PENDING"))
        assert e == errno.EACCES, errno.errorcode.get(e, e)
        r = mfs.sh("ls by-status/CANCELED", mnt.path, check=False)
        assert r.returncode != 0 and "Permission denied" in r.err, r.err
        # The first 401 stops the asking: one request for both listings
        # (ttl is 600, so the key is not tried again meanwhile).
        d = mfs.request_delta(before, server.requests())
        assert d["list"] == 1, d
        codes = [e["status"] for e in server.log()]
        assert 401 in codes
        # A direct lookup is refused too (not "no such file").
        e = mfs.errno_of(os.stat, mnt.p("tasks", "task_direct_lookup_x"))
        assert e == errno.EACCES, errno.errorcode.get(e, e)
        # Already listed within the TTL: still served from the cache.
        before = server.requests()
        assert len(os.listdir(mnt.p("by-status", "FAILED"))) == len(failed)
        assert mfs.request_delta(before, server.requests())["total"] == 0
    finally:
        server.set_key(mfs.DEFAULT_KEY)
    # A failed fetch was not cached as an empty folder; a refresh asked for
    # by hand tries the key again at once, within the ttl.
    pending = ids_where(main_tasks, status="PENDING")
    assert mfs.read(mnt, "by-status", "PENDING", ".refresh").startswith(
        b"refreshed ")
    assert len(os.listdir(mnt.p("by-status", "PENDING"))) == len(pending)


@pytest.mark.parametrize("code", [401, 403])
def test_eacces_on_auth_errors(server, mnt, main_tasks, code):
    """401/403 answers (injected) give EACCES, on listings and lookups.
    A 401 refuses the key; a 403 does once the probe request (one list
    request for one task) is refused too."""
    server.reset()
    server.faults(error_rate=1.0, error_status=code)
    try:
        e = mfs.errno_of(os.listdir, mnt.p("by-status", "SKIPPED"))
        assert e == errno.EACCES, errno.errorcode.get(e, e)
        e = mfs.errno_of(os.listdir, mnt.p("tasks"))
        assert e == errno.EACCES, errno.errorcode.get(e, e)
        e = mfs.errno_of(os.stat, mnt.p("tasks", "task_0123456789ab"))
        assert e == errno.EACCES, errno.errorcode.get(e, e)
        log = server.log()
        assert all(x["status"] == code for x in log)
        # One request was refused (and for a 403, the probe that says the
        # key is); the others were not sent (ttl=600).
        assert len(log) == (1 if code == 401 else 2), log
        if code == 403:
            assert mfs.query_of(log[1]).get("limit") == "1", log[1]
    finally:
        server.faults()
    skipped = ids_where(main_tasks, status="SKIPPED")
    mfs.read(mnt, "by-status", "SKIPPED", ".refresh")
    assert len(os.listdir(mnt.p("by-status", "SKIPPED"))) == len(skipped)



def test_wrong_key_fails_before_mounting(server, mountpoint):
    secret = "sk_wrong_0123456789abcdef"
    r = mfs.run_fail(["-o", opts(server.url), mountpoint], key=secret)
    low = r.err.lower()
    assert "key" in low or "401" in low or "unauthorized" in low, r.err
    assert secret not in r.err and secret not in r.out
    assert secret[3:] not in r.err
    assert_not_mounted(mountpoint)
    codes = [e["status"] for e in server.log()]
    assert 401 in codes or 403 in codes, "the key was never tried"


def test_unreachable_url_fails_before_mounting(fuse_ok, mountpoint):
    port = mfs.free_port()
    r = mfs.run_fail(["-o", opts("http://127.0.0.1:%d" % port), mountpoint])
    assert "127.0.0.1" in r.err or str(port) in r.err or \
        "connect" in r.err.lower(), r.err
    assert_not_mounted(mountpoint)


def test_missing_key_fails_before_mounting(server, mountpoint):
    r = mfs.run_fail(["-o", opts(server.url), mountpoint], key=None)
    assert "key" in r.err.lower(), r.err
    assert_not_mounted(mountpoint)


def test_daemon_mode_mounts_and_unmounts(server, mountpoint, main_tasks):
    r = mfs.run_mixpeekfs(["-o", opts(server.url), mountpoint], timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    try:
        assert os.path.ismount(mountpoint)
        assert len(os.listdir(os.path.join(mountpoint, "tasks"))) == \
            len(main_tasks)
    finally:
        u = subprocess.run(["fusermount3", "-u", mountpoint],
                           capture_output=True, timeout=30)
    assert u.returncode == 0, u.stderr
    assert_not_mounted(mountpoint)


def write_key_file(path, content, mode):
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)


def test_key_file_option(server, mounter, tmp_path, main_tasks):
    kf = str(tmp_path / "key")
    write_key_file(kf, mfs.DEFAULT_KEY + "\n", 0o600)
    m = mounter(server, page_size=100, ttl=600, key_in_env=False,
                extra_opts=["key_file=" + kf])
    failed = ids_where(main_tasks, status="FAILED")
    assert len(os.listdir(m.p("by-status", "FAILED"))) == len(failed)
    assert all(e["status"] == 200 for e in server.log())


def test_key_file_wrong_key_fails(server, mountpoint, tmp_path):
    kf = str(tmp_path / "key")
    write_key_file(kf, "sk_not_the_right_one\n", 0o600)
    r = mfs.run_fail(["-o", opts(server.url, "key_file=" + kf), mountpoint],
                 key=None)
    assert "sk_not_the_right_one" not in r.err
    assert_not_mounted(mountpoint)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_refused(server, mountpoint, tmp_path,
                                             mode):
    kf = str(tmp_path / "key")
    write_key_file(kf, mfs.DEFAULT_KEY + "\n", mode)
    r = mfs.run_fail(["-o", opts(server.url, "key_file=" + kf), mountpoint],
                 key=None)
    assert "key" in r.err.lower(), r.err
    assert mfs.DEFAULT_KEY not in r.err
    assert_not_mounted(mountpoint)


def test_key_file_missing_fails(server, mountpoint, tmp_path):
    r = mfs.run_fail(["-o", opts(server.url, "key_file=%s/nope" % tmp_path),
                  mountpoint], key=None)
    assert "nope" in r.err or "key" in r.err.lower(), r.err
    assert_not_mounted(mountpoint)
