"""12,000 tasks: offset paging switches to cursor before offset 10000."""

import pytest

import mfs


@pytest.mark.timeout(300)
def test_12000_tasks_offset_then_cursor(big_server, mounter):
    big_server.reset()
    tasks = big_server.dataset()
    assert len(tasks) == 12000
    page_size = 1000
    m = mounter(big_server, page_size=page_size, ttl=600)
    big_server.reset()

    r = mfs.sh("ls tasks | wc -l", m.path, timeout=240)
    assert int(r.out) == 12000

    log = mfs.list_entries(big_server.log())
    queries = [mfs.query_of(e) for e in log]
    assert all(e["status"] == 200 for e in log), [e["status"] for e in log]
    offset_reqs = [i for i, q in enumerate(queries) if not q.get("cursor")]
    cursor_reqs = [i for i, q in enumerate(queries) if q.get("cursor")]
    offsets = sorted(int(queries[i].get("offset") or 0) for i in offset_reqs)
    assert max(offsets) <= 10000, offsets
    assert offsets == list(range(0, 10001, page_size)), offsets
    assert len(cursor_reqs) == 1, queries
    # The cursor request follows the page at offset 10000 it continues.
    last_offset_req = next(i for i in offset_reqs
                           if int(queries[i].get("offset") or 0) == 10000)
    assert cursor_reqs[0] > last_offset_req
    for q in queries:
        assert q.get("limit") == str(page_size), q
        assert int(q.get("offset") or 0) <= 10000, q
    assert len(queries) == mfs.pages(12000, page_size), queries

    # Every task exactly once, in the server's order.
    r = mfs.sh("ls -U tasks", m.path, timeout=240)
    assert mfs.lines(r.out) == [mfs.escape_name(t["task_id"]) for t in tasks]

    # And it is all cached: reading a file of the last task costs nothing.
    before = big_server.requests()
    last = tasks[-1]
    with open(m.p("tasks", mfs.escape_name(last["task_id"]), "status")) as f:
        assert f.read() == last["status"] + "\n"
    assert mfs.request_delta(before, big_server.requests())["total"] == 0
