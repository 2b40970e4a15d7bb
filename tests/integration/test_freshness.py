"""How fresh the data is: ttl and ttl_terminal, a forced refresh of one
folder (<folder>/.refresh), of everything (SIGHUP, /.refresh), and the
timestamps (mtime = the task's updated_at).

Expected values come from the test server's data set and from our own
changes to it (POST /_test/tasks/{id}, PUT /_test/tasks), never from what
the filesystem shows. Sleeps are used only where time itself is under
test (waiting out a ttl); everything else polls.
"""

import copy
import datetime
import errno
import json
import math
import os
import signal
import stat
import time
from urllib.parse import quote

import pytest

import mfs
from mfs import errname, ids_where, names, read

SMALL_TTL = 2


# ---------------------------------------------------------------------------
# helpers

def refreshed(m, path):
    """cat <path>/.refresh: it says when, a time within this call."""
    before = int(time.time())
    out = mfs.sh("cat %s" % os.path.join(path, ".refresh"), m.path).out
    after = int(time.time())
    assert out.startswith("refreshed ") and out.endswith("Z\n"), out
    when = datetime.datetime.strptime(out[10:-1], "%Y-%m-%dT%H:%M:%SZ")
    when = int(when.replace(tzinfo=datetime.timezone.utc).timestamp())
    assert before <= when <= after, (before, out, after)
    return out


def line(text):
    return text.encode() + b"\n"


def epoch(iso):
    """Seconds since the epoch of an ISO-8601 UTC time ending in Z."""
    dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp())


def wait_out_ttl(ttl):
    """Sleep past the ttl of everything fetched so far, the kernel's copies
    included (told what was left in whole seconds, they may outlive it by
    up to a second). Call it once the steps that fetched have returned:
    time itself is under test here."""
    time.sleep(ttl + 1.0)


def start_of_a_second():
    """Sleep to just after the next whole second (the daemon keeps times in
    whole seconds: this keeps one short command inside one second)."""
    time.sleep(1.0 - (time.time() % 1.0) + 0.02)


def stats_of(m):
    out = {}
    for l in read(m, ".mixpeekfs", "stats").decode().splitlines():
        key, _, value = l.partition(" ")
        out[key] = value
    return out


def gets_for(log, task_id):
    path = "/v1/tasks/" + quote(task_id, safe="")
    return [e for e in mfs.get_entries(log) if mfs.path_of(e) == path]


def new_task_like(main_tasks, template_id, new_id, **changes):
    """A copy of a data set task with another id (for PUT /_test/tasks)."""
    by_id = {t["task_id"]: t for t in main_tasks}
    assert new_id not in by_id
    task = copy.deepcopy(by_id[template_id])
    task["task_id"] = new_id
    task.update(changes)
    return task


def put_task(server, task):
    status, data = mfs.http("PUT", server.url + "/_test/tasks", task)
    assert status == 201, "PUT /_test/tasks -> %s %r" % (status, data)
    return data


# ---------------------------------------------------------------------------
# ttl

@pytest.mark.timeout(120)
def test_status_change_visible_after_ttl(server, mounter, main_tasks):
    ttl = 3     # a margin of 2 s for the "still cached" checks
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    in_progress = ids_where(main_tasks, status="IN_PROGRESS")
    completed = ids_where(main_tasks, status="COMPLETED")
    assert len(in_progress) > 5 and len(completed) > 100
    tid = in_progress[0]
    name = mfs.escape_name(tid)

    server.reset()
    assert sorted(os.listdir(m.p("by-status", "IN_PROGRESS"))) == \
        names(in_progress)
    assert read(m, "tasks", name, "status") == b"IN_PROGRESS\n"
    assert json.loads(read(m, "tasks", name, "task.json"))["status"] == \
        "IN_PROGRESS"
    # Within the ttl: measured from the server's replies.
    fresh = mfs.fresh_until(server.log(), ttl)

    def within_ttl():
        assert time.time() < fresh, "the machine is too slow: still " \
            "reading %.1fs after the ttl (%d) of the listing ran out" % (
                time.time() - fresh, ttl)

    # Repeated reads within the ttl cost no request.
    server.reset()
    for _ in range(3):
        assert read(m, "tasks", name, "status") == b"IN_PROGRESS\n"
        assert sorted(os.listdir(m.p("by-status", "IN_PROGRESS"))) == \
            names(in_progress)
        r = mfs.sh("ls by-status/IN_PROGRESS | wc -l; "
                   "jq -r .status tasks/%s/task.json" % name, m.path)
        assert r.out.split() == [str(len(in_progress)), "IN_PROGRESS"]
    within_ttl()
    assert server.requests()["total"] == 0, server.log()

    changed = server.update_task(tid, {"status": "COMPLETED"})
    assert changed["status"] == "COMPLETED"
    # Still within the ttl: the cached task and listing, no request.
    status = read(m, "tasks", name, "status")
    listed = os.listdir(m.p("by-status", "IN_PROGRESS"))
    within_ttl()
    assert status == b"IN_PROGRESS\n"
    assert name in listed
    assert server.requests()["total"] == 0, server.log()

    wait_out_ttl(ttl)
    still = [i for i in in_progress if i != tid]
    done = completed + [tid]
    assert read(m, "tasks", name, "status") == b"COMPLETED\n"
    r = mfs.sh("jq -r .status tasks/%s/task.json" % name, m.path)
    assert r.out == "COMPLETED\n"
    assert sorted(os.listdir(m.p("by-status", "IN_PROGRESS"))) == \
        names(still)
    assert sorted(os.listdir(m.p("by-status", "COMPLETED"))) == names(done)
    r = mfs.sh("ls by-status/IN_PROGRESS | wc -l; "
               "ls by-status/COMPLETED | wc -l", m.path)
    assert r.out.split() == [str(len(still)), str(len(done))]
    e = mfs.errno_of(os.stat, m.p("by-status", "IN_PROGRESS", name))
    assert e == errno.ENOENT, errname(e)
    assert read(m, "by-status", "COMPLETED", name, "status") == \
        b"COMPLETED\n"


@pytest.mark.timeout(120)
def test_no_stale_description_after_ttl(server, mounter, main_tasks):
    ttl = SMALL_TTL
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    by_id = {t["task_id"]: t for t in main_tasks}
    tid = ids_where(main_tasks, status="PENDING")[0]
    name = mfs.escape_name(tid)
    old = by_id[tid]["description"]
    new = old + " -- rescheduled on worker 7 (changed by test_freshness)"
    path = m.p("tasks", name, "description")

    server.reset()
    assert read(m, "tasks", name, "description") == line(old)  # a GET
    done = time.time()
    gets = gets_for(server.log(), tid)
    assert len(gets) == 1, gets
    # Times from when the task was really fetched: the server's reply.
    fresh = mfs.fresh_until(gets, ttl)
    assert os.stat(path).st_size == len(line(old))
    server.update_task(tid, {"description": new})
    still = read(m, "tasks", name, "description")
    assert time.time() < fresh, "the machine is too slow: the reads " \
        "after the fetch took %.1fs (ttl=%d)" % (time.time() - done, ttl)
    assert still == line(old)

    # Read over and over across the end of the ttl: old, then new, and
    # never old again once new was seen. The kernel is told what is left
    # of the ttl in whole seconds: the new text shows by one second past
    # floor(fetch) + ttl (a 0.5 s margin for a busy machine).
    due = math.floor(done) + ttl + 1
    seen = []
    while True:
        now = time.time()
        seen.append((now - due, read(m, "tasks", name, "description")))
        if now > due + 1.5:
            break
        time.sleep(0.1)
    values = [v for _, v in seen]
    assert set(values) <= {line(old), line(new)}, values
    first_new = values.index(line(new)) if line(new) in values else None
    assert first_new is not None, "still %r %.1fs after it was due" % (
        values[-1], seen[-1][0])
    assert line(old) not in values[first_new:], \
        "the old text came back after the new one: %r" % values
    assert seen[first_new][0] <= 0.5, \
        "the new text showed only %.1fs after it was due (ttl=%d)" % (
            seen[first_new][0], ttl)

    for _ in range(3):
        assert read(m, "tasks", name, "description") == line(new)
        assert os.stat(path).st_size == len(line(new))
    r = mfs.sh("cat tasks/%s/description; stat -c %%s tasks/%s/description"
               % (name, name), m.path)
    assert r.out == new + "\n" + str(len(line(new))) + "\n"


@pytest.mark.timeout(120)
def test_terminal_tasks_not_refetched_within_ttl_terminal(server, mounter,
                                                          main_tasks):
    ttl = 1
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    failed = ids_where(main_tasks, status="FAILED")
    in_progress = ids_where(main_tasks, status="IN_PROGRESS")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    assert sorted(os.listdir(m.p("by-status", "IN_PROGRESS"))) == \
        names(in_progress)
    sample = failed[:6]
    active = in_progress[1]

    server.reset()
    wait_out_ttl(ttl)
    # tasks/<id> first: the listing is stale now, only ttl_terminal keeps
    # these tasks fresh.
    for tid in sample:
        assert read(m, "tasks", mfs.escape_name(tid), "status") == \
            b"FAILED\n"
    log = server.log()
    assert mfs.get_entries(log) == [], \
        "terminal tasks were fetched again within ttl_terminal: %r" % (
            [mfs.path_of(e) for e in mfs.get_entries(log)],)
    for tid in sample:
        assert read(m, "by-status", "FAILED", mfs.escape_name(tid),
                    "status") == b"FAILED\n"
    r = mfs.sh("cat %s" % " ".join("by-status/FAILED/%s/status tasks/%s/"
                                   "status" % (mfs.escape_name(t),
                                               mfs.escape_name(t))
                                   for t in sample), m.path)
    assert r.out == "FAILED\n" * (2 * len(sample))
    log = server.log()
    assert mfs.get_entries(log) == [], \
        "terminal tasks were fetched again within ttl_terminal: %r" % (
            [mfs.path_of(e) for e in mfs.get_entries(log)],)
    assert all(mfs.path_of(e) == "/v1/tasks/list" for e in log), log

    # The same for a task in an active status: stale after ttl, so one
    # GET of that task (and no other).
    start_of_a_second()
    server.reset()
    assert read(m, "tasks", mfs.escape_name(active), "status") == \
        b"IN_PROGRESS\n"
    log = server.log()
    gets = mfs.get_entries(log)
    assert len(gets_for(log, active)) == 1, \
        "%d GET requests for the active task" % len(gets_for(log, active))
    assert len(gets) == 1, [mfs.path_of(e) for e in gets]


# ---------------------------------------------------------------------------
# forced refresh of one folder

@pytest.mark.timeout(120)
def test_refresh_task_folder(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    by_id = {t["task_id"]: t for t in main_tasks}
    tid = ids_where(main_tasks, status="FAILED")[2]
    name = mfs.escape_name(tid)
    old = by_id[tid]["description"]
    new = "Retried by hand: " + old + " (refreshed)"

    assert read(m, "tasks", name, "description") == line(old)
    server.update_task(tid, {"description": new})
    assert read(m, "tasks", name, "description") == line(old)
    assert json.loads(read(m, "tasks", name, "task.json"))[
        "description"] == old

    server.reset()
    refreshed(m, "tasks/%s" % name)
    log = server.log()
    assert len(gets_for(log, tid)) == 1, log
    assert mfs.list_entries(log) == [], log
    assert read(m, "tasks", name, "description") == line(new)
    assert os.stat(m.p("tasks", name, "description")).st_size == \
        len(line(new))
    assert json.loads(read(m, "tasks", name, "task.json"))[
        "description"] == new
    r = mfs.sh("jq -r .description tasks/%s/task.json" % name, m.path)
    assert r.out == new + "\n"

    # stat works too, and .refresh is never listed.
    newer = new + " again"
    server.update_task(tid, {"description": newer})
    st = os.stat(m.p("tasks", name, ".refresh"))
    assert stat.S_ISREG(st.st_mode) and \
        st.st_size == len("refreshed 2026-01-01T00:00:00Z\n")
    assert read(m, "tasks", name, "description") == line(newer)
    r = mfs.sh("ls -a tasks/%s" % name, m.path)
    assert ".refresh" not in r.out.split("\n")
    assert "description" in r.out.split("\n")


@pytest.mark.timeout(120)
def test_refresh_listing_folder(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    failed = ids_where(main_tasks, status="FAILED")
    new_id = "task_0ddba11fee15"
    task = new_task_like(main_tasks, failed[0], new_id,
                         description="Injected after the listing",
                         created_at=main_tasks[0]["created_at"],
                         updated_at=main_tasks[0]["updated_at"])
    assert task["status"] == "FAILED"

    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    put_task(server, task)
    # Within the ttl the cached listing is served.
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    r = mfs.sh("ls by-status/FAILED | wc -l", m.path)
    assert r.out.strip() == str(len(failed))

    server.reset()
    refreshed(m, "by-status/FAILED")
    log = server.log()
    assert len(mfs.list_entries(log)) == mfs.pages(len(failed) + 1, 100), \
        log
    assert all(mfs.query_of(e).get("limit") in (None, "100")
               for e in mfs.list_entries(log))
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
        names(failed + [new_id])
    r = mfs.sh("ls by-status/FAILED | wc -l; cat by-status/FAILED/%s/"
               "description" % new_id, m.path)
    assert r.out == "%d\nInjected after the listing\n" % (len(failed) + 1)
    r = mfs.sh("ls -a by-status/FAILED", m.path)
    assert ".refresh" not in r.out.split("\n")
    r = mfs.sh("ls -a", m.path)
    assert ".refresh" not in r.out.split("\n")


def force_refresh(m, how, folders):
    """Refresh the given folders ("folder": <folder>/.refresh in each),
    or everything ("root": /.refresh; "sighup": kill -HUP, then wait for
    the refreshes counter to move)."""
    if how == "folder":
        for f in folders:
            refreshed(m, f)
    elif how == "root":
        refreshed(m, "")
    else:
        before = int(stats_of(m)["refreshes"])
        os.kill(m.proc.pid, signal.SIGHUP)
        mfs.wait_until(lambda: int(stats_of(m)["refreshes"]) > before, 30,
                       "the SIGHUP refresh", interval=0.05,
                       alive=lambda: None if m.proc.poll() is None else
                       "mixpeekfs exited after SIGHUP")


@pytest.mark.timeout(120)
def test_kernel_keeps_nothing_past_the_ttl_of_the_data(server, mounter,
                                                      main_tasks):
    """A file first looked at late in its data's ttl is not kept by the
    kernel for a whole new ttl: what cat shows is never older than ttl."""
    ttl = 4
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    by_id = {t["task_id"]: t for t in main_tasks}
    tid = ids_where(main_tasks, status="IN_PROGRESS")[1]
    name = mfs.escape_name(tid)
    path = ("tasks", name, "description")   # tasks/ itself is never listed
    new = by_id[tid]["description"] + " (now with a longer text)"
    server.reset()
    assert name in os.listdir(m.p("by-status", "IN_PROGRESS"))  # fetched
    done = time.time()
    # Times from when the data was really fetched: the server's replies.
    lists = mfs.list_entries(server.log())
    answered = mfs.last_answer(lists)
    fresh = mfs.fresh_until(lists, ttl)
    # The first look, late in the data's ttl but surely before its end:
    # time itself is under test, so wait for that moment.
    first_look = answered + ttl - 1.5
    mfs.wait_until(lambda: time.time() >= first_look, ttl + 10,
                   "a moment late in the ttl of the listing")
    assert read(m, *path) == line(by_id[tid]["description"])  # first look
    looked = time.time()
    assert looked < fresh and gets_for(server.log(), tid) == [], \
        "the first look came after the data's ttl (%.2fs after the " \
        "listing's reply, ttl %d): the machine is too slow" % (
            looked - answered, ttl)
    server.update_task(tid, {"description": new})
    # The kernel is told what is left of the ttl in whole seconds when it
    # looks, so it may keep the file up to a second past floor(fetch) +
    # ttl (whole seconds), never a whole new ttl from the first look.
    mfs.wait_past_ttl(ttl + 1, done, answered)
    assert time.time() < looked + ttl, \
        "too late to tell a new ttl from the first look: the machine is " \
        "too slow"
    # the data behind the kernel's copy is older than ttl now
    assert read(m, *path) == line(new)


@pytest.mark.timeout(120)
def test_failed_refresh_says_eio_and_keeps_data(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["retries=0", "timeout=5"])
    by_id = {t["task_id"]: t for t in main_tasks}
    failed = ids_where(main_tasks, status="FAILED")
    tid = failed[3]
    name = mfs.escape_name(tid)
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    assert read(m, "tasks", name, "description") == \
        line(by_id[tid]["description"])

    server.reset()
    server.faults(error_rate=1.0, error_status=503)
    try:
        for folder in ("by-status/FAILED", "tasks/" + name):
            e = mfs.errno_of(os.stat, m.p(folder, ".refresh"))
            assert e == errno.EIO, "%s/.refresh: %s" % (folder, errname(e))
        codes = [e["status"] for e in server.log()]
        assert codes and set(codes) == {503}, codes
        # the last good data is still there
        assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
            names(failed)
        assert read(m, "tasks", name, "description") == \
            line(by_id[tid]["description"])
    finally:
        server.faults()
    refreshed(m, "tasks/" + name)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["folder", "root", "sighup"])
def test_refresh_finds_a_task_looked_up_too_early(server, mounter,
                                                  main_tasks, how):
    """A name looked up (and not found) before a forced refresh is found
    after it, without listing the folder first: the refresh drops the
    kernel's cached 'no such entry' as well."""
    m = mounter(server, page_size=100, ttl=600)
    failed = ids_where(main_tasks, status="FAILED")
    new_id = "task_0ddba11fee16"
    task = new_task_like(main_tasks, failed[1], new_id,
                         description="Looked up too early")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    for folder in ("by-status/FAILED", "tasks"):
        e = mfs.errno_of(os.stat, m.p(folder, new_id))
        assert e == errno.ENOENT, errname(e)
    put_task(server, task)

    force_refresh(m, how, ["by-status/FAILED", "tasks"])
    problems = []
    for folder in ("by-status/FAILED", "tasks"):
        r = mfs.sh("cat %s/%s/description" % (folder, new_id), m.path,
                   check=False)
        if r.returncode != 0 or r.out != "Looked up too early\n":
            problems.append("cat %s/%s/description after the refresh: %s"
                            % (folder, new_id, r.err.strip() or r.out))
    assert not problems, "\n".join(problems)
    assert new_id in os.listdir(m.p("by-status", "FAILED"))


@pytest.mark.timeout(120)
def test_refresh_listing_drops_a_task_that_left(server, mounter,
                                                main_tasks):
    """After <folder>/.refresh, a task that left the folder on the server
    is gone from it: not listed, and not reachable by name either."""
    m = mounter(server, page_size=100, ttl=600)
    failed = ids_where(main_tasks, status="FAILED")
    tid = failed[7]
    name = mfs.escape_name(tid)
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    assert read(m, "by-status", "FAILED", name, "status") == b"FAILED\n"
    server.update_task(tid, {"status": "COMPLETED"})
    assert read(m, "by-status", "FAILED", name, "status") == b"FAILED\n"

    force_refresh(m, "folder", ["by-status/FAILED"])
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
        names([t for t in failed if t != tid])
    r = mfs.sh("stat -c %%n by-status/FAILED/%s; cat by-status/FAILED/%s/"
               "status" % (name, name), m.path, check=False)
    assert r.returncode != 0 and "No such file" in r.err, \
        "by-status/FAILED/%s after by-status/FAILED/.refresh (ls does not " \
        "show it): %r" % (name, r.out)
    assert read(m, "by-status", "COMPLETED", name, "status") == \
        b"COMPLETED\n"


# ---------------------------------------------------------------------------
# refresh everything

@pytest.mark.timeout(120)
def test_sighup_and_root_refresh_refresh_everything(server, mounter,
                                                    main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    by_id = {t["task_id"]: t for t in main_tasks}
    failed = ids_where(main_tasks, status="FAILED")
    pending = ids_where(main_tasks, status="PENDING")
    tid, aid = failed[5], pending[3]
    name, aname = mfs.escape_name(tid), mfs.escape_name(aid)
    desc1 = by_id[tid]["description"]
    new_id = "task_5eedfee1dead"
    added = new_task_like(main_tasks, failed[0], new_id,
                          description="Added before SIGHUP")

    assert read(m, "tasks", name, "description") == line(desc1)
    assert read(m, "tasks", aname, "status") == b"PENDING\n"
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    refreshes0 = int(stats_of(m)["refreshes"])

    desc2 = desc1 + " [after SIGHUP]"
    server.update_task(tid, {"description": desc2})
    server.update_task(aid, {"status": "PROCESSING"})
    put_task(server, added)
    # ttl=600: nothing of this shows yet.
    assert read(m, "tasks", name, "description") == line(desc1)
    assert read(m, "tasks", aname, "status") == b"PENDING\n"
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)

    def daemon_alive():
        rc = m.proc.poll()
        return None if rc is None else \
            "mixpeekfs exited with %s after SIGHUP:\n%s" % (rc, m.stderr())

    os.kill(m.proc.pid, signal.SIGHUP)
    mfs.wait_until(lambda: int(stats_of(m)["refreshes"]) >= refreshes0 + 1,
                   30, "refreshes to count the SIGHUP", interval=0.05,
                   alive=daemon_alive)
    assert int(stats_of(m)["refreshes"]) == refreshes0 + 1
    assert read(m, "tasks", name, "description") == line(desc2)
    assert read(m, "tasks", aname, "status") == b"PROCESSING\n"
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
        names(failed + [new_id])
    assert read(m, "by-status", "FAILED", new_id, "description") == \
        b"Added before SIGHUP\n"
    assert m.proc.poll() is None, daemon_alive()
    assert os.path.ismount(m.path)

    # A second SIGHUP: still running, still mounted.
    os.kill(m.proc.pid, signal.SIGHUP)
    mfs.wait_until(lambda: int(stats_of(m)["refreshes"]) >= refreshes0 + 2,
                   30, "refreshes to count the second SIGHUP",
                   interval=0.05, alive=daemon_alive)
    assert m.proc.poll() is None, daemon_alive()
    assert os.path.ismount(m.path)
    # (everything was fetched again: cached for the ttl from now)
    assert read(m, "tasks", name, "description") == line(desc2)
    assert read(m, "tasks", aname, "status") == b"PROCESSING\n"

    # cat /.refresh does the same, before it returns.
    desc3 = desc1 + " [after /.refresh]"
    server.update_task(tid, {"description": desc3})
    server.update_task(aid, {"status": "IN_PROGRESS"})
    assert read(m, "tasks", name, "description") == line(desc2)
    assert read(m, "tasks", aname, "status") == b"PROCESSING\n"
    refreshed(m, "")
    assert int(stats_of(m)["refreshes"]) == refreshes0 + 3
    assert read(m, "tasks", name, "description") == line(desc3)
    assert read(m, "tasks", aname, "status") == b"IN_PROGRESS\n"
    assert m.proc.poll() is None and os.path.ismount(m.path)


# ---------------------------------------------------------------------------
# timestamps

@pytest.mark.timeout(120)
def test_mtime_is_updated_at(server, mounter, main_tasks):
    ttl = SMALL_TTL
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    by_id = {t["task_id"]: t for t in main_tasks}
    when = {t["task_id"]: epoch(t["updated_at"]) for t in main_tasks}
    for t in main_tasks:
        assert epoch(t["updated_at"]) >= epoch(t["created_at"])
    sample = [ids_where(main_tasks, status=s)[0] for s in
              ("FAILED", "COMPLETED", "PENDING", "IN_PROGRESS", "DRAFT")]

    for t in sample:
        assert isinstance(by_id[t]["additional_data"], dict)
    parts = ("", "/status", "/task.json", "/additional_data")
    r = mfs.sh("stat -c %%Y %s" % " ".join(
        "tasks/%s%s" % (mfs.escape_name(t), p)
        for t in sample for p in parts), m.path)
    got = [int(x) for x in r.out.split()]
    assert got == [when[t] for t in sample for _ in parts]

    # find -newermt @X: strictly newer than X (X = a task's own mtime).
    ordered = sorted(when.values())
    x = ordered[len(ordered) // 2]
    newer = [t for t, w in when.items() if w > x]
    assert 0 < len(newer) < len(main_tasks)
    assert any(w == x for w in when.values())
    r = mfs.sh("find tasks -mindepth 1 -maxdepth 1 -newermt @%d" % x,
               m.path)
    assert sorted(mfs.lines(r.out)) == sorted(
        "tasks/" + mfs.escape_name(t) for t in newer)

    # ls -lt: newest first, ties by name.
    r = mfs.sh("ls -lt --time-style=+%s tasks/", m.path)
    rows = [l.split() for l in mfs.lines(r.out) if not
            l.startswith("total ")]
    got = [(int(f[5]), f[6]) for f in rows]
    expected = sorted(((w, mfs.escape_name(t)) for t, w in when.items()),
                      key=lambda p: (-p[0], p[1]))
    assert got == expected

    # A change: the server's new updated_at becomes the mtime after ttl.
    tid = ids_where(main_tasks, status="PROCESSING")[0]
    name = mfs.escape_name(tid)
    assert os.stat(m.p("tasks", name)).st_mtime == when[tid]
    changed = server.update_task(tid, {"description": "moved to tier 2"})
    new_when = epoch(changed["updated_at"])
    assert new_when > when[tid]
    assert changed["created_at"] == by_id[tid]["created_at"]
    wait_out_ttl(ttl)
    r = mfs.sh("stat -c %%Y tasks/%s tasks/%s/status tasks/%s/description"
               % (name, name, name), m.path)
    assert [int(x) for x in r.out.split()] == [new_when] * 3
    r = mfs.sh("find tasks -mindepth 1 -maxdepth 1 -newermt @%d"
               % (new_when - 1), m.path)
    later = [t for t, w in when.items() if w >= new_when] + [tid]
    assert sorted(mfs.lines(r.out)) == sorted(
        "tasks/" + mfs.escape_name(t) for t in set(later))
