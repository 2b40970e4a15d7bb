"""A folder read less often than its ttl refreshes on every read, and a walk
of a stale folder (ls -l, find) costs its listing, not a GET per task.

The ttl is what is under test, so the tests wait it out: from the server's
reply time of the fetch (mfs.wait_past_ttl), never from before a step that
may be slow. Every expectation comes from the server's data and its
request log.
"""

import copy
import os
import time

import pytest

import mfs
from mfs import ids_where, names

TTL = 2
WALK_GETS = 3           # include/store.h

def new_task(template, new_id, **changes):
    task = copy.deepcopy(template)
    task["task_id"] = new_id
    task.update(changes)
    return task


def read_after_ttl(server, m, folder, done):
    """Wait until the last listing of the log is past the ttl (and one more
    second, so that the folder is read less often than every ttl + 1 s),
    then list folder; returns its sorted entries and the log of that."""
    entries = mfs.list_entries(server.log())
    answered = mfs.last_answer(entries) if entries else 0
    mfs.wait_past_ttl(TTL + 1, done, answered)
    server.reset()
    return sorted(os.listdir(m.p(folder))), server.log()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("folder,match", [
    ("tasks", {}),
    ("by-status/FAILED", {"status": "FAILED"}),
    ("tasks/status=FAILED/task_type=thumbnail",
     {"status": "FAILED", "task_type": "thumbnail"}),
])
def test_folder_read_once_a_ttl_shows_each_task_that_joined(
        server, mounter, main_tasks, folder, match):
    """Read a folder more than ttl + 1 s after each fetch of it, six times.
    Before every other read a task joins it on the server; between, the
    fetch finds the same tasks as the one before (the case where the
    kernel went on trusting its copy). Each read fetches the listing again
    and shows exactly the server's tasks."""
    m = mounter(server, page_size=100, ttl=TTL)
    template = [t for t in main_tasks
                if all(t.get(k) == v for k, v in match.items())][0]
    expected = set(ids_where(main_tasks, **match))
    server.reset()
    assert sorted(os.listdir(m.p(folder))) == names(expected)
    done = time.time()
    for i in range(1, 6):
        joined = None
        if i % 2 == 0:
            joined = "task_walk_joined_%d" % i
            mfs.put_task(server, new_task(template, joined, **match))
            expected.add(joined)
        got, log = read_after_ttl(server, m, folder, done)
        done = time.time()
        assert mfs.list_entries(log), \
            "read %d of %s sent no list request" % (i + 1, folder)
        assert joined is None or mfs.escape_name(joined) in got, \
            "read %d of %s: %s is missing" % (i + 1, folder, joined)
        assert got == names(expected), (i, folder)


@pytest.mark.timeout(240)
def test_ls_l_of_stale_folder_costs_one_listing(walk_server, mounter):
    """ls -l of a folder of about 400 active tasks, again after each ttl:
    one listing each time, and no GET per task."""
    srv = walk_server
    tasks = srv.dataset()
    srv.reset()
    ids = ids_where(tasks, status="IN_PROGRESS")
    assert 300 <= len(ids) <= 500, len(ids)
    # a ttl with room for one ls -l on a busy machine: within it, the
    # lookups that follow readdirplus are served by the fresh listing
    ttl = TTL + 2
    m = mounter(srv, page_size=100, ttl=ttl)
    folder = "by-status/IN_PROGRESS"
    r = mfs.sh("ls -l %s | grep -c '^d'" % folder, m.path)
    assert int(r.out) == len(ids)
    done = time.time()
    for i in range(4):
        entries = mfs.list_entries(srv.log())
        mfs.wait_past_ttl(ttl + 1, done, mfs.last_answer(entries))
        srv.reset()
        r = mfs.sh("ls -l %s | grep -c '^d'" % folder, m.path)
        done = time.time()
        d = srv.requests()
        assert int(r.out) == len(ids), (i, r.out)
        assert d["get"] == 0, "ls -l %d cost %d GETs" % (i + 2, d["get"])
        assert 1 <= d["list"] <= mfs.pages(len(ids), 100) + 1, (i, d)


def expected_error_files(tasks):
    """How many files or folders named 'error' a walk of tasks/ finds: one
    per key called error that is not null (a null is no entry), at any
    depth of any task."""
    def count(v):
        if isinstance(v, dict):
            return sum((k == "error" and e is not None) + count(e)
                       for k, e in v.items())
        if isinstance(v, list):
            return sum(count(e) for e in v)
        return 0
    return sum(count(t) for t in tasks)


@pytest.mark.timeout(300)
def test_find_over_stale_tasks_costs_listings_not_gets(walk_server, mounter):
    """find tasks -name error over 5,000 tasks with ttl=2: the walk takes
    longer than the ttl, and what goes stale under it is fetched as the
    listing of tasks/ again, at most once per ttl, with at most WALK_GETS
    GETs before each."""
    srv = walk_server
    srv.reset()
    tasks = srv.dataset()
    want = expected_error_files(tasks)
    m = mounter(srv, page_size=1000, ttl=TTL)
    srv.reset()
    t0 = time.time()
    r = mfs.sh("find tasks -name error | wc -l", m.path, timeout=240)
    elapsed = time.time() - t0
    assert int(r.out) == want
    d = srv.requests()
    per_listing = mfs.pages(len(tasks), 1000) + 1
    listings = mfs.pages(d["list"], per_listing)
    # one at the start, then at most one per ttl of the walk
    assert listings <= elapsed / TTL + 2, (d, elapsed)
    assert d["get"] <= WALK_GETS * (listings + 1), (d, elapsed)
    assert d["get"] < len(tasks) / 10, (d, elapsed)
