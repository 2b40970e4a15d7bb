"""Daily use, as a new user does it (issue 11): requests where one is due
(looking a name up never fetches a listing; watch; .git probes), a field
that appears in a task, one log line per malformed folder, garbled 200s
retried, a status the API does not publish, and what -o debug shows.

Expected values come from the test server's data and request counts from
its log. The daemon keeps times in whole seconds: where a ttl is under
test, waits are measured from when a step returned or the server answered
(mfs.wait_past_ttl), and per-ttl budgets are checked on the server's reply
times (mfs.refetched_within_ttl).
"""

import errno
import json
import os
import re
import time

import pytest

import mfs
from mfs import errname, ids_where, names, read

TTL = 2     # where time is under test (whole seconds: 2 s at the least)
ACTIVE = ("PENDING", "PROCESSING", "IN_PROGRESS")


def active_ids(tasks):
    return mfs.plain_ids([t["task_id"] for t in tasks
                          if t["status"] in ACTIVE])


# ---------------------------------------------------------------------------
# 1. a name lookup costs at most one GET per ttl, never a listing

@pytest.mark.timeout(120)
def test_names_under_stale_tasks_cost_one_get_never_a_listing(
        server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=TTL)
    active = active_ids(main_tasks)[0]
    status = next(t["status"] for t in main_tasks
                  if t["task_id"] == active)
    done = mfs.plain_ids(ids_where(main_tasks, status="COMPLETED"))[0]
    got = mfs.listed_then_stale(server, m, TTL, "tasks")["tasks"]
    assert got == names(t["task_id"] for t in main_tasks)

    added = dict(next(t for t in main_tasks if t["task_id"] == active),
                 task_id="task_daily_added_1")
    mfs.put_task(server, added)
    server.reset()
    # cat tasks/<id>/status, stat tasks, a git-aware prompt's probes
    r = mfs.sh("cat tasks/%s/status" % active, m.path)
    assert r.out == status + "\n"
    log = server.log()
    quick = mfs.none_due_until(log, TTL)
    for _ in range(3):      # a prompt's probes, at every prompt
        assert os.path.isdir(m.p("tasks"))
        e = mfs.errno_of(os.stat, m.p("tasks", ".git"))
        assert e == errno.ENOENT, errname(e)
        e = mfs.errno_of(os.stat, m.p("tasks", active, ".git"))
        assert e == errno.ENOENT, errname(e)
    # a terminal task is trusted for ttl_terminal (600): nothing to ask
    assert read(m, "tasks", done, "status") == b"COMPLETED\n"
    mfs.assert_gets_due(server.log(), TTL, [active, ".git"], quick)

    # ls of the stale folder does fetch it again, with the new task
    server.reset()
    got = sorted(os.listdir(m.p("tasks")))
    assert got == names(t["task_id"] for t in server.dataset())
    assert "task_daily_added_1" in got
    assert len(mfs.list_entries(server.log())) == \
        mfs.pages(len(main_tasks) + 1, 100)


@pytest.mark.timeout(120)
def test_names_under_stale_status_and_type_folders(server, mounter,
                                                   main_tasks):
    m = mounter(server, page_size=100, ttl=TTL)
    tt = "thumbnail"
    failed = mfs.plain_ids(ids_where(main_tasks, status="FAILED"))
    completed = mfs.plain_ids(ids_where(main_tasks, status="COMPLETED"))
    thumb_active = [i for i in active_ids(main_tasks)
                    if i in ids_where(main_tasks, task_type=tt)]
    other_type = [i for i in active_ids(main_tasks)
                  if i not in ids_where(main_tasks, task_type=tt)]
    assert failed and completed and thumb_active and other_type
    got = mfs.listed_then_stale(server, m, TTL, "by-status/FAILED",
                                "by-type/" + tt)
    assert got["by-status/FAILED"] == \
        names(ids_where(main_tasks, status="FAILED"))
    assert got["by-type/" + tt] == names(ids_where(main_tasks, task_type=tt))

    # not in the (stale) listing: one GET says it is not here
    e = mfs.errno_of(os.stat, m.p("by-status", "FAILED", completed[0]))
    assert e == errno.ENOENT, errname(e)
    quick = mfs.none_due_until(server.log(), TTL)
    e = mfs.errno_of(os.stat, m.p("by-type", tt, other_type[0]))
    assert e == errno.ENOENT, errname(e)
    # in it: a terminal task costs nothing, an active one its GET
    assert read(m, "by-status", "FAILED", failed[0], "status") == \
        b"FAILED\n"
    r = mfs.sh("cat by-type/%s/%s/task_type" % (tt, thumb_active[0]),
               m.path)
    assert r.out == tt + "\n"
    mfs.assert_gets_due(server.log(), TTL,
                        [completed[0], other_type[0], thumb_active[0]],
                        quick)


@pytest.mark.timeout(120)
def test_watch_cat_status_one_get_per_ttl(server, mounter, main_tasks):
    """watch cat tasks/<id>/status, 5 times over about 2 ttl, while the
    task changes: it shows the change, with one GET per ttl."""
    m = mounter(server, page_size=100, ttl=TTL)
    tid = active_ids(main_tasks)[1]
    before = next(t["status"] for t in main_tasks if t["task_id"] == tid)
    after = next(s for s in ACTIVE if s != before)
    mfs.listed_then_stale(server, m, TTL, "tasks")
    seen = []
    start = time.time()
    for k in range(5):
        # time itself is under test: one cat a second, as watch -n1 does
        mfs.wait_until(lambda: time.time() >= start + k * TTL / 2.0, 60,
                       "the next tick of watch")
        seen.append(mfs.sh("cat tasks/%s/status" % tid, m.path).out)
        if k == 0:
            server.update_task(tid, {"status": after})
    end = time.time()
    assert seen[0] == before + "\n"
    assert seen[-1] == after + "\n", seen
    first_new = seen.index(after + "\n")
    assert seen[first_new:] == [after + "\n"] * (5 - first_new), seen
    log = server.log()
    assert mfs.list_entries(log) == [], mfs.list_entries(log)[:3]
    gets = mfs.get_entries(log)
    assert set(mfs.get_counts(log)) == {mfs.task_path(tid)}
    assert mfs.refetched_within_ttl(gets, TTL) == []
    assert 2 <= len(gets) <= 5
    if end - start < 2 * TTL + 0.9:   # 4 GETs need over 5 s
        assert len(gets) <= 3, len(gets)


# ---------------------------------------------------------------------------
# 3. a field that appears is there at once after a refresh, by any route

def test_field_that_appears_is_visible_after_any_refresh(server, mounter,
                                                         main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    pending = mfs.plain_ids([t["task_id"] for t in main_tasks
                             if t["status"] == "PENDING" and
                             t.get("error") is None])
    routes = ["by-status/FAILED", "tasks"] * 3
    assert len(pending) >= len(routes)
    for tid, route in zip(pending, routes):
        e = mfs.errno_of(os.stat, m.p("tasks", tid, "error"))
        assert e == errno.ENOENT, errname(e)
        assert read(m, "tasks", tid, "status") == b"PENDING\n"
        server.update_task(tid, {"status": "FAILED",
                                 "error": "boom " + tid})
        r = mfs.sh("cat %s/.refresh" % route, m.path)
        assert r.out.startswith("refreshed "), r.out
        r = mfs.sh("cat tasks/%s/status tasks/%s/error" % (tid, tid),
                   m.path, check=False)
        assert (r.returncode, r.out, r.err) == \
            (0, "FAILED\nboom %s\n" % tid, ""), (tid, route)
        assert "error" in os.listdir(m.p("tasks", tid))


# ---------------------------------------------------------------------------
# 9. a malformed query folder is logged once per ttl

def lines_naming(m, since, word):
    return [l for l in m.stderr()[since:].splitlines() if word in l]


def looked_up_five_times(m, rel):
    """List it three times (as ls does) and stat it twice: each must fail
    with EINVAL."""
    errs = [mfs.errno_of(os.listdir, m.p(rel)) for _ in range(3)]
    errs += [mfs.errno_of(os.stat, m.p(rel)) for _ in range(2)]
    assert errs == [errno.EINVAL] * 5, [errname(e) for e in errs]


def test_malformed_folder_logged_once_per_ttl(server, mounter):
    m = mounter(server, page_size=100, ttl=600)
    since = len(m.stderr())
    looked_up_five_times(m, "tasks/x:nope:1")
    lines = lines_naming(m, since, "x:nope:1")
    assert len(lines) == 1, lines
    assert "nope" in lines[0], lines

    # A regular expression the API refuses (422): one line, with the
    # API's words and the folder.
    rel = "tasks/description:regex:(unclosed"
    since = len(m.stderr())
    server.reset()
    looked_up_five_times(m, rel)
    lines = lines_naming(m, since, "(unclosed")
    assert len(lines) == 1, lines
    assert "invalid regular expression" in lines[0], lines
    assert lines[0].endswith("(in %s)" % rel), lines
    entries = mfs.list_entries(server.log())
    assert entries and {e["status"] for e in entries} == {422}, entries


@pytest.mark.timeout(120)
def test_malformed_folder_logged_again_after_ttl(server, mounter):
    m = mounter(server, page_size=100, ttl=TTL)
    rel = "by-status/FAILED/status:like:x"
    since = len(m.stderr())
    looked_up_five_times(m, rel)
    done = time.time()
    assert len(lines_naming(m, since, "status:like:x")) == 1
    mfs.wait_past_ttl(TTL, done)
    looked_up_five_times(m, rel)
    lines = lines_naming(m, since, "status:like:x")
    assert len(lines) == 2, lines
    assert lines[0] == lines[1], lines


# ---------------------------------------------------------------------------
# 10. a garbled 200 is retried

GARBAGE_SEED = 11


@pytest.mark.timeout(180)
def test_garbled_200_is_retried(server, mounter, main_tasks):
    page_size = 50
    statuses = ["COMPLETED", "FAILED", "PENDING", "IN_PROGRESS"]
    m = mounter(server, page_size=page_size, ttl=600,
                extra_opts=["retries=6"])
    server.faults(garbage_rate=0.3, seed=GARBAGE_SEED)
    server.reset()
    folders = [("by-status/" + s, ids_where(main_tasks, status=s))
               for s in statuses]
    folders.append(("tasks", [t["task_id"] for t in main_tasks]))
    problems = []
    for rel, ids in folders:
        try:
            got = sorted(os.listdir(m.p(rel)))
        except OSError as e:
            problems.append("%s: %s" % (rel, errname(e.errno)))
            continue
        if got != names(ids):
            problems.append("%s: %d entries, expected %d"
                            % (rel, len(got), len(ids)))
    assert not problems, problems
    stats = dict(l.split(" ", 1) for l in
                 read(m, ".mixpeekfs", "stats").decode().splitlines())
    retries = int(stats["retries"])
    pages = sum(mfs.pages(len(ids), page_size) for _, ids in folders)
    entries = mfs.list_entries(server.log())
    assert {e["status"] for e in entries} == {200}
    # every retry was one garbled answer, and there were some
    assert retries >= 1
    assert len(entries) == pages + retries, (len(entries), pages, retries)


# ---------------------------------------------------------------------------
# 11. a status (and a type) that the API does not publish

def find_conditions(value, field):
    """Every condition object on field anywhere inside a filters value."""
    out = []
    if isinstance(value, dict):
        if value.get("field") == field:
            out.append(value)
        for v in value.values():
            out.extend(find_conditions(v, field))
    elif isinstance(value, list):
        for v in value:
            out.extend(find_conditions(v, field))
    return out


def test_unpublished_status_and_type_use_a_filter(server, mounter,
                                                  main_tasks):
    template = next(t for t in main_tasks if t["status"] == "PENDING")
    mfs.put_task(server, dict(template, task_id="tq1", status="QUEUED",
                              task_type="brand_new_type"))
    tasks = server.dataset()
    queued = ids_where(tasks, status="QUEUED")
    new_type = ids_where(tasks, task_type="brand_new_type")
    assert queued == new_type == ["tq1"]
    m = mounter(server, page_size=100, ttl=600)
    assert len(os.listdir(m.p("tasks"))) == len(tasks)
    assert "QUEUED" in os.listdir(m.p("by-status"))
    assert "brand_new_type" in os.listdir(m.p("by-type"))
    server.reset()
    got = {}
    for rel in ("by-status/QUEUED", "by-type/brand_new_type"):
        try:
            got[rel] = sorted(os.listdir(m.p(rel)))
        except OSError as e:
            got[rel] = errname(e.errno)
    assert got == {"by-status/QUEUED": names(queued),
                   "by-type/brand_new_type": names(new_type)}
    assert read(m, "by-status", "QUEUED", "tq1", "status") == b"QUEUED\n"
    entries = mfs.list_entries(server.log())
    assert [e["status"] for e in entries] == [200, 200], entries
    for (field, value), e in zip([("status", "QUEUED"),
                                  ("task_type", "brand_new_type")],
                                 entries):
        body = mfs.body_of(e)
        assert field not in body, body
        conds = find_conditions(body.get("filters"), field)
        assert [(c.get("operator", "eq"), c.get("value")) for c in conds] \
            == [("eq", value)], body


# ---------------------------------------------------------------------------
# 12. -o debug tells listings apart; the man page says what it logs

def test_debug_lines_show_the_request_body(server, mounter, main_tasks):
    m = mounter(server, page_size=1000, ttl=600, extra_opts=["debug"])
    server.reset()
    since = len(m.stderr())
    for s in ("FAILED", "COMPLETED"):
        assert sorted(os.listdir(m.p("by-status", s))) == \
            names(ids_where(main_tasks, status=s))
    bodies = [mfs.body_of(e) for e in mfs.list_entries(server.log())]
    assert bodies == [{"status": "FAILED"}, {"status": "COMPLETED"}]
    lines = [l for l in m.stderr()[since:].splitlines()
             if "POST /v1/tasks/list" in l]
    assert len(lines) == 2 and lines[0] != lines[1], lines
    for line, body in zip(lines, bodies):
        assert " " + json.dumps(body, separators=(",", ":")) + ":" in line, \
            (line, body)


def test_man_page_says_what_debug_logs():
    with open(os.path.join(mfs.source_tree(), "man", "mixpeekfs.1")) as f:
        text = f.read()
    # the paragraph of the -o debug option, up to the next .TP
    m = re.search(r'\.BR "\\-o debug".*?\n(.*?)\n\.TP', text, re.S)
    assert m, "no -o debug item in the man page"
    item = " ".join(m.group(1).split())
    assert "request" in item, item
    for sentence in re.split(r"(?<=\.) ", item):
        if "FUSE operation" in sentence:
            assert "not" in sentence, item
