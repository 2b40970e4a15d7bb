"""Deep listings fetched as task_id ranges at once (issue #13, part 3).

A listing deeper than two offset windows (offset <= 10000) without a sort,
or deeper than one sorted by task_id, is cut into ranges of task_id, each listed sorted by
task_id under a case-sensitive gte/gt + lt filter, first page with
include_total, then its other offset pages, all ranges at once. The result
must be the listing computed here from the server's data, in task_id
(byte) order, with no task lost or repeated; when the API refuses the
filter or the ranges do not add up, the older paging (both ends by offset,
the middle by cursor) takes over and is just as exact. Request counts and
bodies come from the server's log.
"""

import json

import pytest

import mfs

COUNT = 25000
SEED = 7
PAGE = 1000


@pytest.fixture(scope="module")
def deep_server(fuse_ok, workdir):
    import os
    srv = mfs.Server(os.path.join(workdir, "srv-ranges"), count=COUNT,
                     seed=SEED, extra_keys=True)
    yield srv
    srv.stop()


@pytest.fixture
def srv(deep_server):
    deep_server.reset(faults=True)
    yield deep_server
    deep_server.reset(dataset=True, faults=True)


def by_bytes(ids):
    return sorted(ids, key=lambda i: i.encode("utf-8"))


def range_group(body):
    """The task_id range conditions of a request body, or None."""
    for item in ((body or {}).get("filters") or {}).get("AND") or []:
        if isinstance(item, dict) and item.get("case_sensitive") is True \
                and set(item) == {"AND", "case_sensitive"} and all(
                    c.get("field") == "task_id" for c in item["AND"]):
            return {c["operator"]: c["value"] for c in item["AND"]}
    return None


def ls(m, folder):
    r = mfs.sh("ls -U %s" % folder, m.path, timeout=240)
    return mfs.lines(r.out)


def ranges_of(log):
    """The distinct ranges the log's requests asked for."""
    seen = []
    for e in log:
        g = range_group(e["body"])
        if g is not None and g not in seen:
            seen.append(g)
    return seen


@pytest.mark.timeout(300)
def test_listing_is_the_data_in_id_order(srv, mounter):
    tasks = srv.dataset()
    m = mounter(srv, page_size=PAGE, ttl=600)
    srv.reset()
    got = ls(m, "tasks")
    want = by_bytes(t["task_id"] for t in tasks)
    assert len(got) == COUNT
    assert got == [mfs.escape_name(i) for i in want]

    log = mfs.list_entries(srv.log())
    assert all(e["status"] == 200 for e in log), [e["status"] for e in log]
    # the first request: the listing as asked, with its total
    assert log[0]["body"] in (None, {})
    assert mfs.query_of(log[0]).get("include_total") == "true"
    ranges = ranges_of(log)
    assert len(ranges) >= 2, ranges
    for e in log[1:]:
        q = mfs.query_of(e)
        assert range_group(e["body"]) is not None, e["body"]
        assert e["body"]["sort"] == {"field": "task_id",
                                     "direction": "asc"}
        assert q["limit"] == str(PAGE)
        assert int(q.get("offset") or 0) <= 10000
        assert not q.get("cursor"), q
    # the ranges cut the whole id space, end to end, without overlap
    lows = [r.get("gte") for r in ranges]
    assert lows.count(None) == 1 and \
        sum(1 for r in ranges if "lt" not in r) == 1
    chain = sorted(ranges, key=lambda r: (r.get("gte") is not None,
                                          r.get("gte") or ""))
    for a, b in zip(chain, chain[1:]):
        assert a["lt"] == b["gte"], (a, b)
    # every range's first page asked for its total
    firsts = [e for e in log[1:] if not mfs.query_of(e).get("offset")]
    assert len(firsts) == len(ranges)
    assert all(mfs.query_of(e).get("include_total") == "true"
               for e in firsts)
    # the bound of the issue: ceil(N/page_size) + one page per range
    assert len(log) <= mfs.pages(COUNT, PAGE) + len(ranges), len(log)

    # all of it is cached: reading a file of any task costs nothing
    before = srv.requests()
    for t in (tasks[0], tasks[COUNT // 2], tasks[-1]):
        with open(m.p("tasks", mfs.escape_name(t["task_id"]),
                      "status")) as f:
            assert f.read() == t["status"] + "\n"
    assert mfs.request_delta(before, srv.requests())["total"] == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("folder,desc", [("tasks/@sort=task_id", False),
                                         ("tasks/@sort=-task_id", True)])
def test_sorted_by_task_id(srv, mounter, folder, desc):
    """The first page is one end: the other end is fetched, and the
    middle is cut by the ids' alphabet between them."""
    tasks = srv.dataset()
    m = mounter(srv, page_size=PAGE, ttl=600)
    srv.reset()
    got = ls(m, folder)
    want = by_bytes(t["task_id"] for t in tasks)
    if desc:
        want.reverse()
    assert got == [mfs.escape_name(i) for i in want]
    log = mfs.list_entries(srv.log())
    assert all(e["status"] == 200 for e in log)
    assert all(e["body"]["sort"]["field"] == "task_id" for e in log)
    ranges = ranges_of(log)
    assert ranges, "no task_id range was asked for"
    assert not any(mfs.query_of(e).get("cursor") for e in log)
    # the two ends are pages of their own, cut off the whole
    assert len(log) <= mfs.pages(COUNT, PAGE) + len(ranges) + 2, len(log)


@pytest.mark.timeout(300)
def test_status_folder_sorted_by_task_id(srv, mounter):
    """A status folder's listing keeps its condition in every range.
    (Without the sort, 11,234 tasks fit two windows from both ends, which
    test_deep_paging.py covers.)"""
    tasks = srv.dataset()
    done = [t["task_id"] for t in tasks if t["status"] == "COMPLETED"]
    assert len(done) > 10000 + PAGE      # deeper than one offset window
    m = mounter(srv, page_size=PAGE, ttl=600)
    srv.reset()
    got = ls(m, "by-status/COMPLETED/@sort=task_id")
    assert got == [mfs.escape_name(i) for i in by_bytes(done)]
    log = mfs.list_entries(srv.log())
    assert all(e["body"].get("status") == "COMPLETED" for e in log)
    ranges = ranges_of(log)
    assert ranges
    assert len(log) <= mfs.pages(len(done), PAGE) + len(ranges) + 2


ODD_IDS = [
    "Zeta", "zeta", "ZETA_1", "a b", "a\tb", "task/evil", "..", ".",
    "task_", "task_~", "task_\u00e4", "task_\u00e5", "\u00e4", "\u00e5x",
    "\u65e5\u672c", "\U0001f600", "\u00ff", "!", "~", "\"quoted\"",
    "back\\slash", "percent%2F", "x" * 300, "task_0000000000000",
    "TASK_abc", "task_ABC", "0", "-", "_", "A", "a",
]


@pytest.mark.timeout(300)
def test_odd_ids(srv, mounter):
    """Ids of any bytes, case and length land in exactly one range."""
    for i, tid in enumerate(ODD_IDS):
        status, _ = mfs.http("PUT", srv.url + "/_test/tasks",
                             {"task_id": tid, "task_type": "thumbnail",
                              "status": "COMPLETED",
                              "created_at": "2020-01-01T00:00:%02dZ" % i})
        assert status in (200, 201)
    tasks = srv.dataset()
    assert len(tasks) == COUNT + len(ODD_IDS)
    m = mounter(srv, page_size=PAGE, ttl=600)
    srv.reset()
    for folder, desc in (("tasks", False), ("tasks/@sort=-task_id", True)):
        want = by_bytes(t["task_id"] for t in tasks)
        if desc:
            want.reverse()
        assert ls(m, folder) == [mfs.escape_name(i) for i in want], folder
    log = mfs.list_entries(srv.log())
    assert all(e["status"] == 200 for e in log)
    assert ranges_of(log)


def _fallback(srv, mounter, mode, status):
    tasks = srv.dataset()
    m = mounter(srv, page_size=PAGE, ttl=600)
    srv.reset()
    srv.faults(task_id_filter=mode)
    got = ls(m, "tasks")
    assert got == [mfs.escape_name(i)
                   for i in by_bytes(t["task_id"] for t in tasks)]
    log = mfs.list_entries(srv.log())
    ranged = [e for e in log if range_group(e["body"]) is not None]
    assert ranged and all(e["status"] == status for e in ranged)
    # then the older paging: both ends by offset, the middle by cursor
    last = max(i for i, e in enumerate(log)
               if range_group(e["body"]) is not None)
    after = log[last + 1:]
    assert after and all(e["status"] == 200 for e in after)
    assert all(range_group(e["body"]) is None for e in after)
    sorts = {json.dumps(e["body"].get("sort"), sort_keys=True)
             for e in after}
    assert sorts == {json.dumps({"field": "task_id", "direction": d},
                                sort_keys=True) for d in ("asc", "desc")}
    assert any(mfs.query_of(e).get("cursor") for e in after)
    return m


@pytest.mark.timeout(300)
def test_refused_filter_falls_back(srv, mounter):
    m = _fallback(srv, mounter, "refuse", 400)
    assert "refused a task_id range" in m.stderr()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["total_off", "ignore"])
def test_ranges_not_adding_up_fall_back(srv, mounter, mode):
    _fallback(srv, mounter, mode, 200)


def _page_ids(srv, body, limit=PAGE):
    ids, cursor, total = [], None, None
    while True:
        q = "limit=%d&include_total=true" % limit
        if cursor:
            from urllib.parse import quote
            q += "&cursor=" + quote(cursor, safe="")
        status, data = mfs.http("POST", srv.url + "/v1/tasks/list?" + q,
                                body,
                                {"Authorization": "Bearer " + srv.key})
        assert status == 200, data
        ids += [t["task_id"] for t in data["results"]]
        total = data["pagination"]["total"]
        cursor = data["pagination"]["next_cursor"]
        if not cursor:
            return ids, total


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_server_index_is_the_filter(srv, direction):
    """The test server's cut of a cached listing (its index on task_id)
    gives what filtering gives."""
    ids = by_bytes(t["task_id"] for t in srv.dataset())
    lo, hi = ids[3000], ids[5500]
    for ops in ({"gte": lo, "lt": hi}, {"gt": lo, "lt": hi},
                {"gte": hi}, {"lt": lo}, {"gt": lo, "lte": hi}):
        conds = [{"field": "task_id", "operator": op, "value": v}
                 for op, v in ops.items()]
        group = {"AND": conds, "case_sensitive": True}
        body = {"status": "COMPLETED",
                "filters": {"AND": [{"field": "status", "operator": "ne",
                                     "value": "FAILED"}, group]},
                "sort": {"field": "task_id", "direction": direction}}
        # an extra condition that always holds: not the index's shape
        slow = json.loads(json.dumps(body))
        slow["filters"]["AND"][1]["AND"].append(
            {"field": "task_id", "operator": "exists", "value": True})
        fast_ids, fast_total = _page_ids(srv, body)
        slow_ids, slow_total = _page_ids(srv, slow)
        assert fast_ids == slow_ids and fast_total == slow_total, ops
        assert fast_total == len(fast_ids) > 0
