"""A server that stops answering, or goes away: requests end within their
timeout (retries included) with EIO, the rest of the mount keeps working,
unmounting is possible, and the mount recovers when the server is back."""

import errno
import os
import subprocess
import threading
import time

import pytest

import mfs
from mfs import errname, ids_where, names

CRASH_WORDS = ("AddressSanitizer", "runtime error", "LeakSanitizer",
               "Segmentation", "Aborted", "core dumped")


def timed_errno(fn, *args):
    t0 = time.monotonic()
    e = mfs.errno_of(fn, *args)
    return e, time.monotonic() - t0


def held(server):
    """Whether the server holds a request (hang) right now."""
    return any(e.get("status") is None for e in server.log())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("opts,bound", [
    (["timeout=2", "retries=0"], 10),
    (["timeout=3", "retries=2"], 10),
])
def test_hang_gives_eio_within_bound(server, mounter, main_tasks, opts,
                                     bound):
    m = mounter(server, page_size=100, ttl=600, extra_opts=opts)
    server.faults(hang=True)
    try:
        e, took = timed_errno(os.listdir, m.p("by-status", "CANCELED"))
        assert e == errno.EIO, errname(e)
        assert took < bound, "listing took %.1fs (bound %ds)" % (took, bound)
        # A lookup of a task no listing has shown (GET) too.
        tid = ids_where(main_tasks, status="ACTIVE")[0]
        e, took = timed_errno(os.stat, m.p("tasks", mfs.escape_name(tid)))
        assert e == errno.EIO, errname(e)
        assert took < bound, "lookup took %.1fs (bound %ds)" % (took, bound)
        assert m.proc.poll() is None
    finally:
        server.faults()
    # The failures were not cached.
    want = ids_where(main_tasks, status="CANCELED")
    assert sorted(os.listdir(m.p("by-status", "CANCELED"))) == names(want)


def test_hang_at_mount_time_fails_within_bound(server, tmp_path):
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    server.faults(hang=True)
    try:
        t0 = time.monotonic()
        r = mfs.run_mixpeekfs(["-f", "-o", "url=%s,timeout=2,retries=1"
                               % server.url, mnt], timeout=60)
        took = time.monotonic() - t0
    finally:
        server.faults()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True,
                           timeout=30)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode != 0, err
    assert took < 10, "took %.1fs to give up" % took
    assert "cannot mount" in err, err
    assert not os.path.ismount(mnt)


@pytest.mark.timeout(120)
def test_concurrent_readers_of_a_held_folder(server, mounter, main_tasks):
    """Three readers of one folder whose listing is held: each gets EIO
    within the timeout (plus a margin), not one timeout after another."""
    timeout = 5
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["timeout=%d" % timeout, "retries=0"])
    server.reset()
    server.faults(hang=True)
    results = {}

    def waiter(k):
        results[k] = timed_errno(os.listdir, m.p("by-status", "PROCESSING"))

    ths = [threading.Thread(target=waiter, args=(k,)) for k in range(3)]
    try:
        for th in ths:
            th.start()
        for th in ths:
            th.join(4 * timeout + 10)
        assert not any(th.is_alive() for th in ths), "a reader hangs"
    finally:
        server.faults()
    lists = len(mfs.list_entries(server.log()))
    report = ", ".join("%s after %.1fs" % (errname(e), took)
                       for e, took in sorted(results.values(),
                                             key=lambda r: r[1]))
    for e, took in results.values():
        assert e == errno.EIO, report
    assert max(took for _e, took in results.values()) < timeout + 4, \
        "readers: %s (timeout=%d; %d list requests sent)" % (
            report, timeout, lists)
    want = ids_where(main_tasks, status="PROCESSING")
    assert sorted(os.listdir(m.p("by-status", "PROCESSING"))) == names(want)


@pytest.mark.timeout(120)
def test_hang_does_not_block_cached_data(server, mounter, main_tasks):
    """While a listing and a task lookup are held, cached folders, their
    files, the same tasks under tasks/, and the static folders answer at
    once."""
    timeout = 8
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["timeout=%d" % timeout, "retries=0"])
    failed = ids_where(main_tasks, status="FAILED")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    by_id = {t["task_id"]: t for t in main_tasks}
    unseen = ids_where(main_tasks, status="ACTIVE")[0]
    server.reset()
    server.faults(hang=True)
    results = {}

    def run(k, fn, path):
        results[k] = timed_errno(fn, path)

    ths = [threading.Thread(target=run, args=(
               "list", os.listdir, m.p("by-status", "PROCESSING"))),
           threading.Thread(target=run, args=(
               "get", os.stat, m.p("tasks", mfs.escape_name(unseen))))]
    try:
        for th in ths:
            th.start()
        mfs.wait_until(lambda: len([e for e in server.log()
                                    if e.get("status") is None]) >= 2,
                       10, "two held requests")
        slow = []

        def quick(what, fn):
            t0 = time.monotonic()
            fn()
            took = time.monotonic() - t0
            if took > 1.5:
                slow.append("%s took %.1fs" % (what, took))

        def read(*parts):
            with open(m.p(*parts), "rb") as f:
                return f.read()

        quick("listing by-status/FAILED", lambda: os.listdir(
            m.p("by-status", "FAILED")))
        for tid in failed[:5]:
            name = mfs.escape_name(tid)
            quick("by-status/FAILED/%s/description" % name, lambda: read(
                "by-status", "FAILED", name, "description"))
            assert read("by-status", "FAILED", name, "description") == \
                by_id[tid]["description"].encode() + b"\n"
            # a first lookup under tasks/ of a task the daemon holds
            quick("tasks/%s/status" % name, lambda: read(
                "tasks", name, "status"))
        quick("ls by-type", lambda: os.listdir(m.p("by-type")))
        quick("README", lambda: read("README"))
        still_held = all(th.is_alive() for th in ths)
        for th in ths:
            th.join(timeout + 10)
        assert not any(th.is_alive() for th in ths), "a request hangs"
    finally:
        server.faults()
    assert not slow, "during a hang: " + "; ".join(slow)
    assert still_held, "the held requests ended early: %r" % (results,)
    for k, (e, took) in results.items():
        assert e == errno.EIO, "%s: %s" % (k, errname(e))
        assert took < timeout + 5, "%s took %.1fs" % (k, took)


@pytest.mark.timeout(120)
def test_unmount_while_a_request_hangs(server, mounter):
    """fusermount3 -u returns at once while a listing is held (EBUSY is
    allowed, then -uz must detach); the daemon exits once the held request
    times out, and the waiting reader gets an error, not a hang."""
    timeout = 6
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["timeout=%d" % timeout, "retries=0"])
    server.reset()
    server.faults(hang=True)
    try:
        ls = subprocess.Popen(["ls", m.p("by-status", "COMPLETED")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd="/")
        mfs.wait_until(lambda: held(server), 10, "a held request")
        t0 = time.monotonic()
        r = subprocess.run(["fusermount3", "-u", m.path],
                           capture_output=True, timeout=30)
        assert time.monotonic() - t0 < 5, "fusermount3 -u blocked"
        if r.returncode != 0:
            assert b"busy" in r.stderr.lower(), r.stderr
            r = subprocess.run(["fusermount3", "-uz", m.path],
                               capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert time.monotonic() - t0 < 5, "fusermount3 -uz blocked"
        assert not os.path.ismount(m.path)
        try:
            rc = m.proc.wait(timeout + 10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the daemon did not exit within %ds of the "
                                 "unmount; stderr:\n%s"
                                 % (timeout + 10, m.stderr()[-2000:]))
        exited = time.monotonic() - t0
        assert rc == 0, "daemon exit status %s: %s" % (rc, m.stderr())
        out, err = ls.communicate(timeout=15)
    finally:
        server.faults()
        if ls.poll() is None:
            ls.kill()
    assert exited < timeout + 10
    assert ls.returncode != 0, out
    assert b"Input/output error" in err or \
        b"Transport endpoint is not connected" in err, err
    for w in CRASH_WORDS:
        assert w not in m.stderr(), m.stderr()[-3000:]


@pytest.mark.timeout(180)
def test_server_killed_and_restarted(fuse_ok, workdir, mounter):
    """The server process dies: new folders and unseen tasks fail with EIO
    quickly, cached folders and their files are still served; once a
    server listens on the same port again, everything lists."""
    base = os.path.join(workdir, "srv-kill-%d" % id(mounter))
    srv = mfs.Server(base + "-a", count=300, seed=31, extra_keys=True)
    srv2 = None
    try:
        tasks = srv.dataset()
        by_id = {t["task_id"]: t for t in tasks}
        m = mounter(srv, page_size=50, ttl=600,
                    extra_opts=["retries=1", "timeout=5",
                                "connect_timeout=2"])
        failed = ids_where(tasks, status="FAILED")
        assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
            names(failed)
        port = srv.port
        srv.stop()

        # New folder and unseen task: EIO, quickly (connection refused).
        e, took = timed_errno(os.listdir, m.p("by-type", "thumbnail"))
        assert e == errno.EIO, errname(e)
        assert took < 8, "took %.1fs" % took
        unseen = ids_where(tasks, status="PENDING")[0]
        e, took = timed_errno(os.stat, m.p("tasks", mfs.escape_name(unseen)))
        assert e == errno.EIO, "unseen task: %s (must not be ENOENT)" \
            % errname(e)
        assert took < 8, "took %.1fs" % took
        # Cached: still served, with the right content.
        t0 = time.monotonic()
        assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
            names(failed)
        for tid in failed[:10]:
            with open(m.p("by-status", "FAILED", mfs.escape_name(tid),
                          "task_id"), "rb") as f:
                assert f.read() == tid.encode() + b"\n"
            with open(m.p("tasks", mfs.escape_name(tid), "status")) as f:
                assert f.read() == "FAILED\n"
        assert time.monotonic() - t0 < 3
        assert m.proc.poll() is None, m.stderr()

        # Back on the same port (same data).
        srv2 = mfs.Server(base + "-b", count=300, seed=31, port=port,
                          extra_keys=True)
        assert srv2.port == port
        thumbs = ids_where(tasks, task_type="thumbnail")
        e, took = timed_errno(os.listdir, m.p("by-type", "thumbnail"))
        assert e is None, "after the restart: %s" % errname(e)
        assert sorted(os.listdir(m.p("by-type", "thumbnail"))) == \
            names(thumbs)
        with open(m.p("tasks", mfs.escape_name(unseen), "description"),
                  "rb") as f:
            assert f.read() == by_id[unseen]["description"].encode() + b"\n"
        assert m.proc.poll() is None
        problems = m.unmount()
        assert not problems, problems
    finally:
        srv.stop()
        if srv2 is not None:
            srv2.stop()
