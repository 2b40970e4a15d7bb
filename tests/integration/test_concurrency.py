"""Concurrent readers share fetches and see consistent data.

Also run under ThreadSanitizer by tests/run (a build with -Db_sanitize=thread).
"""

import collections
import errno
import os
import threading
import time

import pytest

import mfs


@pytest.mark.timeout(240)
def test_concurrent_readers(server, main_tasks, mounter):
    by_status = collections.defaultdict(list)
    for t in main_tasks:
        by_status[t["status"]].append(mfs.escape_name(t["task_id"]))
    statuses = sorted(by_status)
    by_id = {mfs.escape_name(t["task_id"]): t for t in main_tasks}
    m = mounter(server, page_size=100, ttl=1)
    server.reset()
    errors = []
    counts = collections.Counter()
    deadline = time.monotonic() + 8     # ttl=1: several refreshes happen

    def reader(k):
        i = k
        while time.monotonic() < deadline and not errors:
            s = statuses[i % len(statuses)]
            i += 1
            try:
                got = mfs.lines(mfs.sh("ls -U by-status/" + s, m.path).out)
                if got != by_status[s]:
                    errors.append(("ls", s, len(got), len(by_status[s])))
                for name in got[:5]:
                    with open(m.p("by-status", s, name, "status")) as f:
                        if f.read() != s + "\n":
                            errors.append(("status", s, name))
                    with open(m.p("tasks", name, "task_id")) as f:
                        if f.read() != by_id[name]["task_id"] + "\n":
                            errors.append(("task_id", name))
                counts["ok"] += 1
            except Exception as e:  # noqa: BLE001 - any failure is a bug
                errors.append(("exception", repr(e)))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert counts["ok"] >= 8
    # concurrent readers of one listing share a fetch: no more list pages
    # than one fetch of every status per ttl period would take
    listed = server.requests()["list"]
    pages = sum(mfs.pages(len(v), 100) for v in by_status.values())
    assert listed <= pages * 10, (listed, pages)


@pytest.mark.timeout(120)
def test_single_flight(server, main_tasks, mounter):
    failed = [mfs.escape_name(t["task_id"]) for t in main_tasks
              if t["status"] == "FAILED"]
    m = mounter(server, page_size=100, ttl=600)
    server.faults(latency_ms=300)   # a wide window for readers to meet in
    server.reset()
    outs = [None] * 8

    def reader(k):
        outs[k] = mfs.lines(mfs.sh("ls -U by-status/FAILED", m.path).out)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o == failed for o in outs)
    # eight readers, one fetch
    assert server.requests()["list"] == mfs.pages(len(failed), 100)


@pytest.mark.timeout(120)
def test_lookups_in_one_folder_run_side_by_side(server, main_tasks, mounter):
    """Eight lookups of unlisted tasks in tasks/ reach the API at once: the
    kernel passes LOOKUPs of one folder side by side only when the INIT
    reply carries FUSE_PARALLEL_DIROPS (session.c puts it there on
    libfuse < 3.17). Each lookup held by the API counts in the server's
    log; one at a time, there would never be more than one."""
    timeout = 6
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["timeout=%d" % timeout, "retries=0"])
    ids = [t["task_id"] for t in main_tasks][:8]
    server.reset()
    server.faults(hang=True)
    results = {}

    def stat(k):
        try:
            os.stat(m.p("tasks", mfs.escape_name(ids[k])))
            results[k] = 0
        except OSError as e:
            results[k] = e.errno

    threads = [threading.Thread(target=stat, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        mfs.wait_until(
            lambda: len({e["path"] for e in server.log()
                         if e["method"] == "GET" and e["status"] is None})
            == 8, 4 * timeout, "eight GETs held at the same time")
    finally:
        server.faults()
        for t in threads:
            t.join(4 * timeout + 10)
    assert results == {k: errno.EIO for k in range(8)}, results
    # nothing failed is remembered: the same names resolve now
    for k in range(8):
        st = os.stat(m.p("tasks", mfs.escape_name(ids[k]), "task_id"))
        assert st.st_size == len(ids[k].encode()) + 1
