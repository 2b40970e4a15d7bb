"""Server failures: 5xx, invalid JSON, broken replies give EIO, never an
empty folder; after the fault is gone the folder lists normally."""

import errno
import os

import pytest

import mfs
from mfs import ids_where


def expect_eio(fn, *args):
    try:
        res = fn(*args)
    except OSError as e:
        assert e.errno == errno.EIO, "errno %s, want EIO" % (
            errno.errorcode.get(e.errno, e.errno))
        return
    raise AssertionError("no error; got %r" % (res if not isinstance(
        res, list) else "a listing of %d entries" % len(res)))


FAULTS = [
    pytest.param({"error_rate": 1.0, "error_status": 500}, id="500"),
    pytest.param({"error_rate": 1.0, "error_status": 503}, id="503"),
    pytest.param({"garbage_rate": 1.0}, id="html-garbage"),
    pytest.param({"bad": "truncated_json"}, id="truncated-json"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", FAULTS)
def test_failures_give_eio_not_empty(server, mnt, main_tasks, fault):
    server.faults(**fault)
    try:
        expect_eio(os.listdir, mnt.p("by-status", "DRAFT"))
        expect_eio(os.stat, mnt.p("tasks", main_tasks[5]["task_id"]))
        r = mfs.sh("ls by-type/materialize", mnt.path, check=False,
                   timeout=200)
        assert r.returncode != 0 and "Input/output error" in r.err, \
            (r.returncode, r.out, r.err)
        assert r.out == ""
    finally:
        server.faults()
    drafts = ids_where(main_tasks, status="DRAFT")
    assert len(os.listdir(mnt.p("by-status", "DRAFT"))) == len(drafts)
    mats = ids_where(main_tasks, task_type="materialize")
    assert len(os.listdir(mnt.p("by-type", "materialize"))) == len(mats)


@pytest.mark.timeout(300)
def test_failure_on_a_later_page_is_eio(server, mounter, main_tasks):
    """Page 1 fine, later pages fail: the listing fails, nothing partial."""
    import threading
    m = mounter(server, page_size=10, ttl=600)
    n = len(ids_where(main_tasks, status="COMPLETED"))
    assert n > 30
    server.reset()
    server.faults(latency_ms=400)
    result = {}

    def lister():
        result["r"] = mfs.sh("ls by-status/COMPLETED", m.path, check=False,
                             timeout=250)

    th = threading.Thread(target=lister)
    th.start()
    try:
        mfs.wait_until(lambda: any(e["status"] == 200 for e in
                                   mfs.list_entries(server.log())),
                       30, "the first page to be answered")
        server.faults(latency_ms=400, error_rate=1.0, error_status=500)
        th.join(260)
    finally:
        server.faults()
    assert not th.is_alive()
    r = result["r"]
    assert r.returncode != 0 and "Input/output error" in r.err, \
        (r.returncode, r.err)
    assert r.out == "", "partial listing shown"
    codes = [e["status"] for e in mfs.list_entries(server.log())]
    assert codes[0] == 200 and 500 in codes, codes
    # Afterwards it lists completely.
    assert len(os.listdir(m.p("by-status", "COMPLETED"))) == n


@pytest.mark.timeout(300)
@pytest.mark.parametrize("bad", ["wrong_types", "missing_task_id",
                                 "deep_nesting", "duplicate_ids",
                                 "short_page", "long_page", "cursor_loop"])
def test_hostile_replies_do_not_crash(server, mounter, main_tasks, bad):
    """Odd but well-formed replies: any outcome but a crash or a hang."""
    m = mounter(server, page_size=25, ttl=600)
    server.faults(bad=bad)
    try:
        for folder in ("by-status/COMPLETED", "by-status/PENDING", "tasks"):
            r = mfs.sh("ls -U %s | wc -l; find %s > /dev/null" % (
                folder, folder), m.path, check=False, timeout=200)
            assert r.returncode in (0, 1), r.err
        mfs.errno_of(os.stat, m.p("tasks", main_tasks[1]["task_id"]))
    finally:
        server.faults()
    assert m.proc.poll() is None, "mixpeekfs died: " + m.stderr()[-3000:]
    # The mount still works for a folder not listed before.
    failed = ids_where(main_tasks, status="FAILED")
    assert len(os.listdir(m.p("by-status", "FAILED"))) == len(failed)


@pytest.mark.timeout(300)
def test_429_is_retried(server, mounter, main_tasks):
    """A 429 with Retry-After is waited out; the listing then succeeds."""
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    # Every request gets 429 Retry-After: 1 until the first one is seen.
    server.faults(rate_429=1.0, retry_after="1")
    import threading
    done = {}

    def lister():
        done["names"] = os.listdir(m.p("by-status", "ARCHIVED"))

    th = threading.Thread(target=lister)
    th.start()
    mfs.wait_until(lambda: any(e["status"] == 429 for e in server.log()),
                   30, "a 429 answer")
    server.faults()
    th.join(200)
    assert not th.is_alive()
    archived = ids_where(main_tasks, status="ARCHIVED")
    assert done.get("names") == [mfs.escape_name(i) for i in archived]
    codes = [e["status"] for e in server.log()]
    assert codes[0] == 429 and codes[-1] == 200, codes


@pytest.mark.timeout(120)
def test_timeout_gives_eio(server, mounter, main_tasks):
    """A server that never answers: EIO once the request timeout passes."""
    import time
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["timeout=3", "retries=0"])
    server.faults(hang=True)
    try:
        t0 = time.monotonic()
        expect_eio(os.listdir, m.p("by-status", "SUSPENDED"))
        elapsed = time.monotonic() - t0
        assert elapsed < 30, "took %.1fs" % elapsed
    finally:
        server.faults()
    suspended = ids_where(main_tasks, status="SUSPENDED")
    assert len(os.listdir(m.p("by-status", "SUSPENDED"))) == len(suspended)
