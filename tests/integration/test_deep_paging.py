"""Listings deeper than the API's offset cap (offset <= 10000).

A listing that does not fit one offset window (offsets 0..10000) is fetched
sorted by task_id: from both ends at once while two windows cover it (the
COMPLETED listing here), as ranges of task_id at once past that (all 25,000
tasks here; test_ranges.py has the details, and the cursor the ranges fall
back to).
"""

import json

import pytest

import mfs


def _id_key(task_id):
    return task_id.encode("utf-8")


def _ranges(log):
    """How many task_id ranges the requests asked for."""
    return len({json.dumps(item, sort_keys=True) for e in log
                for item in ((e["body"] or {}).get("filters") or {})
                .get("AND") or [] if "case_sensitive" in item})


@pytest.mark.timeout(300)
def test_25000_tasks_offset_windows_then_cursor(big_server, mounter):
    tasks = big_server.dataset()
    n = len(tasks)
    assert n == 25000
    page_size = 1000
    m = mounter(big_server, page_size=page_size, ttl=600)
    big_server.reset()

    r = mfs.sh("ls -U tasks", m.path, timeout=240)
    want = sorted((t["task_id"] for t in tasks), key=_id_key)
    assert mfs.lines(r.out) == [mfs.escape_name(i) for i in want]

    log = mfs.list_entries(big_server.log())
    assert all(e["status"] == 200 for e in log), [e["status"] for e in log]
    queries = [mfs.query_of(e) for e in log]
    for q in queries:
        assert q.get("limit") == str(page_size), q
        assert int(q.get("offset") or 0) <= 10000, q
    # ceil(N/page_size) pages, plus one page per task_id range
    assert len(log) <= mfs.pages(n, page_size) + _ranges(log), len(log)
    sorts = [(e["body"] or {}).get("sort") for e in log[1:]]
    assert all(s == {"field": "task_id", "direction": "asc"}
               for s in sorts), sorts

    # all of it is cached: reading a file of any task costs nothing
    before = big_server.requests()
    for t in (tasks[0], tasks[12345], tasks[-1]):
        with open(m.p("tasks", mfs.escape_name(t["task_id"]),
                      "status")) as f:
            assert f.read() == t["status"] + "\n"
    assert mfs.request_delta(before, big_server.requests())["total"] == 0


@pytest.mark.timeout(300)
def test_deep_status_listing(big_server, mounter):
    tasks = big_server.dataset()
    done = [t["task_id"] for t in tasks if t["status"] == "COMPLETED"]
    assert len(done) > 10000 + 1000   # deeper than one offset window
    m = mounter(big_server, page_size=1000, ttl=600)
    big_server.reset()
    r = mfs.sh("ls -U by-status/COMPLETED", m.path, timeout=240)
    got = mfs.lines(r.out)
    assert got == [mfs.escape_name(i) for i in sorted(done, key=_id_key)]
    log = mfs.list_entries(big_server.log())
    assert len(log) <= mfs.pages(len(done), 1000) + 1
    assert all((e["body"] or {}).get("status") == "COMPLETED" for e in log)
