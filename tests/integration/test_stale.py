"""A listing whose refresh fails keeps being served (stale), with a warning;
a listing never fetched fails; fresh data shows once the API answers."""

import errno
import json
import os
import time

import pytest

import mfs
from mfs import errname, ids_where, names, read

TTL = 1


def wait_out_ttl():
    """Sleep past the ttl of everything fetched so far (and of the one
    more ttl a failed refresh trusts stale data for), the kernel's copies
    included: called only once the steps that fetched have returned, so
    it measures from after the data was really fetched. Time itself is
    under test here."""
    time.sleep(TTL + 1.0)


def warnings_of(m):
    return [l for l in m.stderr().splitlines() if "last good" in l]


@pytest.mark.timeout(180)
def test_stale_listing_served_while_refresh_fails(server, mounter,
                                                  main_tasks):
    m = mounter(server, page_size=50, ttl=TTL,
                extra_opts=["retries=0", "timeout=10"])
    by_id = {t["task_id"]: t for t in main_tasks}
    failed = ids_where(main_tasks, status="FAILED")
    assert len(failed) > 100        # several pages
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    sample = failed[:8]
    for tid in sample:
        assert read(m, "by-status", "FAILED", mfs.escape_name(tid),
                    "description") == \
            by_id[tid]["description"].encode() + b"\n"
    assert not warnings_of(m)

    server.faults(error_rate=1.0, error_status=503)
    try:
        wait_out_ttl()
        server.reset()
        got = os.listdir(m.p("by-status", "FAILED"))
        assert sorted(got) == names(failed), \
            "stale listing not served: %d entries" % len(got)
        # The refresh was tried (and failed), so what we saw was stale.
        codes = [e["status"] for e in mfs.list_entries(server.log())]
        assert 503 in codes, "no refresh was tried: %r" % codes
        # Files of the listed tasks still read, also in task.json form.
        for tid in sample:
            name = mfs.escape_name(tid)
            assert read(m, "by-status", "FAILED", name, "task_id") == \
                tid.encode() + b"\n"
            assert read(m, "by-status", "FAILED", name, "status") == \
                b"FAILED\n"
            doc = json.loads(read(m, "by-status", "FAILED", name,
                                  "task.json"))
            assert doc == by_id[tid]
            assert read(m, "tasks", name, "description") == \
                by_id[tid]["description"].encode() + b"\n"
        r = mfs.sh("ls by-status/FAILED | wc -l; cat by-status/FAILED/"
                   "task_[0-3]*/status | sort | uniq -c", m.path,
                   timeout=120)
        n = len([t for t in failed if t.startswith(("task_0", "task_1",
                                                      "task_2", "task_3"))])
        assert n >= 5
        assert r.out.split("\n")[0].strip() == str(len(failed)), r.out
        assert "%d FAILED" % n in r.out, r.out

        # The warning: logged, and once per failed refresh at most.
        warns = warnings_of(m)
        assert warns, "no warning about the last good listing:\n" + \
            m.stderr()[-3000:]
        failed_refreshes = len([c for c in (
            e["status"] for e in mfs.list_entries(server.log()))
            if c == 503])
        assert len(warns) <= failed_refreshes, \
            "%d warnings for %d failed list requests:\n%s" % (
                len(warns), failed_refreshes, "\n".join(warns))
        assert "warning" in warns[0].lower(), warns[0]

        # A folder never listed fails: no empty folder, no stale data.
        e = mfs.errno_of(os.listdir, m.p("by-status", "SKIPPED"))
        assert e == errno.EIO, errname(e)
        e = mfs.errno_of(os.listdir, m.p("by-type", "thumbnail"))
        assert e == errno.EIO, errname(e)
        assert m.proc.poll() is None

        # The server changes while it is down for us.
        gone, came = failed[0], ids_where(main_tasks, status="SKIPPED")[0]
        server.update_task(gone, {"status": "COMPLETED"})
        server.update_task(came, {"status": "FAILED"})
        wait_out_ttl()
        # Still down: still the old listing.
        assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
            names(failed)
    finally:
        server.faults()

    # Up again: after the ttl the fresh listing shows.
    wait_out_ttl()
    now = set(failed) - {gone} | {came}
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(now)
    assert read(m, "tasks", mfs.escape_name(gone), "status") == \
        b"COMPLETED\n"
    assert read(m, "tasks", mfs.escape_name(came), "status") == b"FAILED\n"
    assert mfs.escape_name(gone) in os.listdir(m.p("by-status", "COMPLETED"))
    e = mfs.errno_of(os.stat, m.p("by-status", "FAILED",
                                  mfs.escape_name(gone)))
    assert e == errno.ENOENT, errname(e)
    skipped = set(ids_where(main_tasks, status="SKIPPED")) - {came}
    assert sorted(os.listdir(m.p("by-status", "SKIPPED"))) == names(skipped)


@pytest.mark.timeout(180)
def test_stale_task_served_while_lookup_fails(server, mounter, main_tasks):
    """A task fetched alone (GET) whose refresh fails keeps its last good
    content; a task never fetched fails with EIO."""
    m = mounter(server, page_size=50, ttl=TTL,
                extra_opts=["retries=0", "timeout=10"])
    by_id = {t["task_id"]: t for t in main_tasks}
    a, b = ids_where(main_tasks, status="DRAFT")[:2]
    name = mfs.escape_name(a)
    assert read(m, "tasks", name, "description") == \
        by_id[a]["description"].encode() + b"\n"
    server.faults(error_rate=1.0, error_status=502)
    try:
        wait_out_ttl()
        server.reset()
        assert read(m, "tasks", name, "description") == \
            by_id[a]["description"].encode() + b"\n"
        assert json.loads(read(m, "tasks", name, "task.json")) == by_id[a]
        e = mfs.errno_of(os.stat, m.p("tasks", mfs.escape_name(b)))
        assert e == errno.EIO, errname(e)
        codes = [e["status"] for e in mfs.get_entries(server.log())]
        assert 502 in codes, codes
    finally:
        server.faults()
    server.update_task(a, {"status": "ACTIVE"})
    wait_out_ttl()
    assert read(m, "tasks", name, "status") == b"ACTIVE\n"
    assert read(m, "tasks", mfs.escape_name(b), "task_id") == \
        b.encode() + b"\n"


@pytest.mark.timeout(180)
def test_stale_reads_do_not_hammer_the_api(server, mounter, main_tasks):
    """While the API fails, reading one file of each of 20 stale tasks
    makes at most two refresh attempts per task (the failure is not
    retried on every kernel request of every read)."""
    m = mounter(server, page_size=50, ttl=TTL,
                extra_opts=["retries=0", "timeout=10"])
    failed = ids_where(main_tasks, status="FAILED")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    sample = failed[:20]
    server.faults(error_rate=1.0, error_status=503)
    try:
        wait_out_ttl()
        server.reset()
        t0 = time.monotonic()
        r = mfs.sh("cat %s | sort | uniq -c" % " ".join(
            "by-status/FAILED/%s/status" % mfs.escape_name(t)
            for t in sample), m.path, timeout=120)
        took = time.monotonic() - t0
        log = server.log()
    finally:
        server.faults()
    assert "%d FAILED" % len(sample) in r.out, r.out
    gets = mfs.get_entries(log)
    per_task = {}
    for e in gets:
        per_task[mfs.path_of(e)] = per_task.get(mfs.path_of(e), 0) + 1
    worst = max(per_task.values()) if per_task else 0
    assert len(gets) <= 2 * len(sample) and worst <= 2, \
        "%d GET requests for reading %d stale files (up to %d for one " \
        "task; %.1fs); the API was asked again on every access" % (
            len(gets), len(sample), worst, took)


@pytest.mark.timeout(180)
def test_stale_served_within_one_timeout_while_the_api_hangs(
        server, mounter, main_tasks):
    """The API stops answering: a listed folder and a file of one of its
    tasks are each served (stale) within one request timeout, not after
    one timeout per kernel request."""
    timeout = 3
    m = mounter(server, page_size=50, ttl=TTL,
                extra_opts=["retries=0", "timeout=%d" % timeout])
    by_id = {t["task_id"]: t for t in main_tasks}
    failed = ids_where(main_tasks, status="FAILED")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    tid = failed[3]
    server.faults(hang=True)
    timings = []
    try:
        wait_out_ttl()
        t0 = time.monotonic()
        got = os.listdir(m.p("by-status", "FAILED"))
        timings.append(("ls by-status/FAILED", time.monotonic() - t0))
        assert sorted(got) == names(failed)
        t0 = time.monotonic()
        data = read(m, "by-status", "FAILED", mfs.escape_name(tid),
                    "description")
        timings.append(("cat .../description", time.monotonic() - t0))
        assert data == by_id[tid]["description"].encode() + b"\n"
    finally:
        server.faults()
    slow = ["%s took %.1fs" % (w, t) for w, t in timings
            if t > timeout + 2]
    assert not slow, "timeout=%d: %s" % (timeout, "; ".join(slow))
