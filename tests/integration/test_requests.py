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
    server.reset()
    got = os.listdir(m.p("by-status", "FAILED"))
    assert mfs.escape_name(moved) not in got
    # fresh until: from the server's replies, when it was really fetched
    fresh = mfs.fresh_until(mfs.list_entries(server.log()), ttl)
    server.update_task(moved, {"status": "FAILED",
                               "description": "moved by the test"})
    got2 = os.listdir(m.p("by-status", "FAILED"))
    if time.time() < fresh:
        assert got2 == got, "listing changed within the TTL"
        assert server.requests()["list"] == mfs.pages(len(failed), 100)
    # time itself is under test: past the ttl of the last fetch (the
    # kernel's copy may outlive it by up to a second)
    time.sleep(ttl + 1.0)
    before = server.requests()
    got3 = os.listdir(m.p("by-status", "FAILED"))
    assert mfs.request_delta(before, server.requests())["list"] >= 1
    assert mfs.escape_name(moved) in got3
    assert len(got3) == len(failed) + 1
    r = mfs.sh("cat by-status/FAILED/%s/description" % mfs.escape_name(moved),
               m.path)
    assert r.out == "moved by the test\n"


# ---------------------------------------------------------------------------
# Name lookups (issue 11, items 1 and 2): past the ttl, a name under
# tasks/, by-status/S/ or by-type/T/ costs at most one GET per task per
# ttl (none for a terminal task within ttl_terminal), and never a listing;
# only reading a folder (ls) fetches its listing.

BUDGET_TTL = 2


def lookup_round(m, cases):
    """stat each (path, exists); the paths whose outcome was wrong."""
    wrong = []
    for rel, exists in cases:
        e = mfs.errno_of(os.stat, m.p(rel))
        if e != (None if exists else errno.ENOENT):
            wrong.append("%s: %s" % (rel, mfs.errname(e)))
    return wrong


@pytest.mark.timeout(120)
def test_name_lookups_cost_one_get_per_ttl_and_no_listing(server, mounter,
                                                          main_tasks):
    tt = "thumbnail"
    m = mounter(server, page_size=100, ttl=BUDGET_TTL)
    typ = {t["task_id"]: t["task_type"] for t in main_tasks}
    plain = mfs.plain_ids
    # active, in all three listings fetched
    p = [i for i in plain(ids_where(main_tasks, status="PENDING"))
         if typ[i] == tt][0]
    # terminal, listed
    f = [i for i in plain(ids_where(main_tasks, status="FAILED"))
         if typ[i] != tt][0]
    # terminal, in no listing fetched
    c = [i for i in plain(ids_where(main_tasks, status="COMPLETED"))
         if typ[i] != tt][0]
    unknown = "task_budget_unknown"
    cases = [("tasks/" + p, True), ("by-status/PENDING/" + p, True),
             ("by-type/%s/%s" % (tt, p), True),
             ("tasks/" + f, True), ("by-status/FAILED/" + f, True),
             ("by-type/%s/%s" % (tt, f), False),
             ("by-status/FAILED/" + c, False), ("tasks/" + c, True),
             ("by-type/%s/%s" % (tt, c), False),
             ("tasks/" + unknown, False),
             ("by-status/FAILED/" + unknown, False),
             ("by-type/%s/%s" % (tt, unknown), False),
             ("tasks/.git", False), ("by-status/PENDING/.git", False),
             ("by-type/%s/.git" % tt, False)]
    mfs.listed_then_stale(server, m, BUDGET_TTL, "by-status/PENDING",
                          "by-status/FAILED", "by-type/" + tt)
    # Twice: the second round, within the ttl, costs nothing.
    wrong = lookup_round(m, cases)
    quick = mfs.none_due_until(server.log(), BUDGET_TTL)
    wrong += lookup_round(m, cases)
    assert wrong == []
    log = server.log()
    mfs.assert_gets_due(log, BUDGET_TTL, [p, c, unknown, ".git"], quick)

    # Past the ttl of those GETs: the active task and the missing names
    # are asked again, once; the terminal ones are not.
    mfs.wait_past_ttl(BUDGET_TTL, time.time(),
                      mfs.last_answer(mfs.get_entries(log)))
    server.reset()
    wrong = lookup_round(m, cases)
    quick = mfs.none_due_until(server.log(), BUDGET_TTL)
    wrong += lookup_round(m, cases)
    assert wrong == []
    mfs.assert_gets_due(server.log(), BUDGET_TTL, [p, unknown, ".git"],
                        quick)


@pytest.mark.timeout(120)
def test_stat_storm_on_stale_folder_costs_no_listing(server, mounter,
                                                     main_tasks):
    """stat of a listing folder and of the tasks in it, for longer than the
    ttl, costs nothing (the tasks are terminal); only ls fetches again."""
    failed = ids_where(main_tasks, status="FAILED")
    paths = [os.path.join("by-status", "FAILED", n)
             for n in mfs.names(failed)]
    m = mounter(server, page_size=100, ttl=BUDGET_TTL)
    server.reset()
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
        mfs.names(failed)
    server.reset()
    until = time.time() + 2 * BUDGET_TTL + 1
    rounds = 0
    while rounds < 3 or time.time() < until:
        rounds += 1
        assert os.path.isdir(m.p("by-status", "FAILED"))
        for rel in paths:
            os.stat(m.p(rel))
            os.stat(m.p(rel, "status"))
    assert server.requests()["total"] == 0, server.log()[:3]
    r = mfs.sh("ls -l by-status/FAILED | grep -c '^d'", m.path)
    assert int(r.out) == len(failed)
    d = server.requests()
    assert (d["list"], d["get"]) == (mfs.pages(len(failed), 100), 0), d
