"""Request accounting: paging, caching, TTL, direct GET, ENOENT, namespace."""

import errno
import os
import time

import pytest

import mfs
from mfs import ids_where


def check_list_pages(entries, n, page_size, body_check):
    """The list requests of one folder listing: limit/offset/total/body.

    Pages may be fetched concurrently, so the log order is not checked;
    the first request (the only one with include_total) is page 1.
    """
    queries = [mfs.query_of(e) for e in entries]
    assert len(entries) == mfs.pages(n, page_size), queries
    offsets = []
    for e, q in zip(entries, queries):
        assert q.get("limit") == str(page_size), q
        assert not q.get("cursor"), q
        offsets.append(int(q.get("offset") or "0"))
        body_check(mfs.body_of(e))
        assert e.get("status") == 200, e
    assert sorted(offsets) == [i * page_size for i in range(len(entries))]
    assert offsets[0] == 0
    assert queries[0].get("include_total", "").lower() in \
        ("true", "1", "yes", "on"), queries[0]


def test_failed_listing_costs_ceil_n_over_page_size(server, mounter,
                                                     main_tasks):
    n = len(ids_where(main_tasks, status="FAILED"))
    page_size = 7
    assert n > 3 * page_size
    m = mounter(server, page_size=page_size, ttl=600)
    server.reset()
    before = server.requests()
    got = os.listdir(m.p("by-status", "FAILED"))
    assert len(got) == n
    d = mfs.request_delta(before, server.requests())
    assert d["list"] == mfs.pages(n, page_size)
    assert d["get"] == 0 and d["total"] == d["list"]

    def body_is_status(b):
        assert b == {"status": "FAILED"}, b

    check_list_pages(mfs.list_entries(server.log()), n, page_size,
                     body_is_status)


def test_after_listing_reading_everything_costs_nothing(server, mounter,
                                                       main_tasks):
    failed = ids_where(main_tasks, status="FAILED")
    m = mounter(server, page_size=50, ttl=600)
    before = server.requests()
    mfs.sh("ls by-status/FAILED", m.path)
    d = mfs.request_delta(before, server.requests())
    assert d["list"] == mfs.pages(len(failed), 50) and d["total"] == d["list"]

    before = server.requests()
    r = mfs.sh("cat by-status/FAILED/*/status", m.path)
    assert r.out == "FAILED\n" * len(failed)
    mfs.sh("cat by-status/FAILED/*/task.json > /dev/null", m.path)
    r = mfs.sh("grep -r -c . by-status/FAILED | wc -l", m.path)
    assert int(r.out) > len(failed)
    mfs.sh("grep -r -l timeout by-status/FAILED > /dev/null", m.path,
           check=False)
    mfs.sh("ls -l by-status/FAILED by-status/FAILED/* > /dev/null", m.path)
    mfs.sh("ls -lR by-status/FAILED > /dev/null", m.path)
    r = mfs.sh("find by-status/FAILED | wc -l", m.path)
    assert int(r.out) > len(failed) * 5
    mfs.sh("find by-status/FAILED -type f -exec stat -c %s {} + > /dev/null",
           m.path)
    mfs.sh("stat by-status/FAILED/* > /dev/null", m.path)
    # Listing again within the TTL.
    mfs.sh("ls by-status/FAILED > /dev/null", m.path)
    d = mfs.request_delta(before, server.requests())
    assert d["total"] == 0, d


def test_tasks_listing_follows_all_pages(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    before = server.requests()
    r = mfs.sh("ls tasks | wc -l", m.path)
    assert int(r.out) == len(main_tasks)
    d = mfs.request_delta(before, server.requests())
    assert d["list"] == mfs.pages(len(main_tasks), 100)
    assert d["get"] == 0

    def body_is_empty(b):
        assert b in ({}, None), b

    check_list_pages(mfs.list_entries(server.log()), len(main_tasks), 100,
                     body_is_empty)
    # Reading every status file of every task: no further requests.
    before = server.requests()
    r = mfs.sh("cat tasks/*/status | wc -l", m.path)
    assert int(r.out) == len(main_tasks)
    mfs.sh("ls -l tasks > /dev/null", m.path)
    assert mfs.request_delta(before, server.requests())["total"] == 0


def test_type_listing_body_and_cost(server, mounter, main_tasks):
    tt = "thumbnail"
    n = len(ids_where(main_tasks, task_type=tt))
    assert n > 0
    m = mounter(server, page_size=5, ttl=600)
    server.reset()
    r = mfs.sh("ls by-type/%s | wc -l" % tt, m.path)
    assert int(r.out) == n

    def body_is_type(b):
        assert b == {"task_type": tt}, b

    check_list_pages(mfs.list_entries(server.log()), n, 5, body_is_type)


def test_listing_exact_multiple_of_page_size(server, mounter, main_tasks):
    """N a multiple of page_size: still exactly N/page_size requests."""
    n = len(main_tasks)  # 1000
    page_size = 200
    assert n % page_size == 0
    m = mounter(server, page_size=page_size, ttl=600)
    before = server.requests()
    assert len(os.listdir(m.p("tasks"))) == n
    d = mfs.request_delta(before, server.requests())
    assert d["list"] == n // page_size


def test_unknown_task_id_is_enoent_with_one_get(server, mnt):
    bogus = "task_does_not_exist_4711"
    server.reset()
    assert mfs.errno_of(os.stat, mnt.p("tasks", bogus)) == errno.ENOENT
    assert server.requests()["total"] == 1
    gets = mfs.get_entries(server.log())
    assert [mfs.path_of(e) for e in gets] == ["/v1/tasks/" + bogus]
    assert gets[0]["status"] == 404
    assert mfs.list_entries(server.log()) == []
    r = mfs.sh("ls tasks/" + bogus, mnt.path, check=False)
    assert r.returncode != 0 and "No such file" in r.err
    r = mfs.sh("cat tasks/%s/status" % bogus, mnt.path, check=False)
    assert r.returncode != 0 and "No such file" in r.err


def test_unknown_id_in_status_folder_is_enoent(server, mnt, main_tasks):
    completed = ids_where(main_tasks, status="COMPLETED")[0]
    os.listdir(mnt.p("by-status", "FAILED"))
    assert mfs.errno_of(os.stat, mnt.p("by-status", "FAILED", completed)) \
        == errno.ENOENT


def test_task_reachable_by_get_without_listing(server, mnt, main_tasks):
    t = main_tasks[len(main_tasks) // 2]
    name = mfs.escape_name(t["task_id"])
    server.reset()
    r = mfs.sh("cat tasks/%s/status" % name, mnt.path)
    assert r.out == t["status"] + "\n"
    r = mfs.sh("jq -r .task_id tasks/%s/task.json" % name, mnt.path)
    assert r.out == t["task_id"] + "\n"
    log = server.log()
    assert mfs.list_entries(log) == []
    gets = mfs.get_entries(log)
    assert [mfs.path_of(e) for e in gets] == ["/v1/tasks/" + t["task_id"]]
    # Reading the rest of it costs nothing more.
    before = server.requests()
    mfs.sh("grep -r . tasks/%s > /dev/null" % name, mnt.path)
    assert mfs.request_delta(before, server.requests())["total"] == 0


def test_namespace_header_sent(server, mounter):
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["namespace=ns_integration"])
    server.reset()
    os.listdir(m.p("by-status", "PENDING"))
    mfs.errno_of(os.stat, m.p("tasks", "task_nope_ns"))
    log = server.log()
    v1 = [e for e in log if mfs.path_of(e).startswith("/v1/")]
    assert len(v1) >= 2
    for e in v1:
        assert e.get("namespace") == "ns_integration", e


def test_no_namespace_header_by_default(server, mnt):
    server.reset()
    os.listdir(mnt.p("by-status", "PENDING"))
    log = server.log()
    assert log
    for e in log:
        assert e.get("namespace") in (None, ""), e


@pytest.mark.timeout(120)
def test_ttl_expiry_refetches(server, mounter, main_tasks):
    """Within the TTL: cached. After it: fetched again, changes visible."""
    ttl = 2
    m = mounter(server, page_size=100, ttl=ttl)
    pending = ids_where(main_tasks, status="PENDING")
    failed = ids_where(main_tasks, status="FAILED")
    assert pending and failed
    moved = pending[0]
    before = server.requests()
    got = os.listdir(m.p("by-status", "FAILED"))
    assert mfs.escape_name(moved) not in got
    t_listed = time.monotonic()
    server.update_task(moved, {"status": "FAILED",
                               "description": "moved by the test"})
    got2 = os.listdir(m.p("by-status", "FAILED"))
    if time.monotonic() - t_listed < ttl * 0.8:
        assert got2 == got, "listing changed within the TTL"
        assert mfs.request_delta(before, server.requests())["list"] == \
            mfs.pages(len(failed), 100)
    time.sleep(ttl + 1.0)
    before = server.requests()
    got3 = os.listdir(m.p("by-status", "FAILED"))
    assert mfs.request_delta(before, server.requests())["list"] >= 1
    assert mfs.escape_name(moved) in got3
    assert len(got3) == len(failed) + 1
    r = mfs.sh("cat by-status/FAILED/%s/description" % mfs.escape_name(moved),
               m.path)
    assert r.out == "moved by the test\n"
