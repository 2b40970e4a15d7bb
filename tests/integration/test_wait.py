"""<task>/.wait (issue 14, part 1): reading it blocks until the task is in
a terminal status, then returns that status and a newline.

Tasks are added to the test server (PUT /_test/tasks) and their status is
changed there (POST /_test/tasks/{id}); when a wait ended is measured from
the server's log time of the fetch that answered it. Each test uses tasks
of its own: the kernel keeps a terminal answer (it never changes).
"""

import contextlib
import errno
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

import mfs
from mfs import names, read, wait_until

# The wait ends within about a second of mixpeekfs seeing the end.
WITHIN = 1.0


# ---------------------------------------------------------------------------
# helpers

def template(main_tasks):
    return next(t for t in main_tasks if t["status"] == "PROCESSING")


def new_task(server, main_tasks, task_id, status="PROCESSING"):
    """Add a task that is still running (its type is the template's)."""
    task = dict(template(main_tasks), task_id=task_id, status=status)
    mfs.put_task(server, task)
    return task


def gets_of(log, task_id):
    """The requests that asked for one task by its id, oldest first: a GET
    of it, or a list request with it in a task_id `in` filter (a poll)."""
    return mfs.asked_for(log, task_id)


def kept(m):
    """(reads of .wait kept by the daemon, tasks it polls for them).
    stats is rendered on every read: one that came out longer than its
    size a moment before is cut short, so read it again then."""
    def whole():
        text = read(m, ".mixpeekfs", "stats").decode()
        return ("\nwaits " in text and "\nwaited_tasks " in text and
                text.endswith("\n") and text)
    s = dict(l.partition(" ")[::2]
             for l in wait_until(whole, 30, "whole stats").splitlines())
    return int(s["waits"]), int(s["waited_tasks"])


def start_cat(path):
    return subprocess.Popen(["cat", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def ended(proc, timeout=60, what="the reader to end"):
    """Poll until proc has ended; the time.time() it was seen ended."""
    wait_until(lambda: proc.poll() is not None, timeout, what)
    return time.time()


def still(*procs):
    """For wait_until's alive: an error text once a reader has ended."""
    def alive():
        done = [p for p in procs if p.poll() is not None]
        if done:
            return "a reader ended: %r" % (done[0].communicate(),)
        return None
    return alive


def waiting(m, reads, tasks, procs=()):
    """Poll until the daemon keeps reads READs for tasks tasks, while every
    reader of procs still waits."""
    wait_until(lambda: kept(m) == (reads, tasks), 60,
               "%d kept reads of %d tasks" % (reads, tasks),
               alive=still(*procs))


def no_hung(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def got(server, task_id, n, reader):
    """Poll until the server has had n GETs of the task (the reader still
    waiting); how many it has had."""
    wait_until(lambda: len(gets_of(server.log(), task_id)) >= n, 60,
               "%d GETs of the task" % n, alive=still(reader))
    return len(gets_of(server.log(), task_id))


@contextlib.contextmanager
def one_reader(server, main_tasks, mounter, tid, **mount):
    """A new running task tid, a mount, and a cat of tasks/<tid>/.wait
    whose READ the daemon keeps: yields (mount, cat)."""
    new_task(server, main_tasks, tid)
    m = mounter(server, **mount)
    cat = start_cat(m.p("tasks", tid, ".wait"))
    try:
        waiting(m, 1, 1, [cat])
        yield m, cat
    finally:
        no_hung([cat])


# ---------------------------------------------------------------------------
# an ended task: at once, no request, not listed

def test_ended_task_answers_at_once_without_a_request(server, main_tasks,
                                                      mounter):
    m = mounter(server)
    done = mfs.plain_ids(mfs.ids_where(main_tasks, status="COMPLETED"))[0]
    failed = mfs.plain_ids(mfs.ids_where(main_tasks, status="FAILED"))[0]
    # the lookups fetch what the folders need: the task, the listing
    assert os.path.isdir(m.p("tasks", done))
    assert failed in os.listdir(m.p("by-status", "FAILED"))
    server.reset()
    assert read(m, "tasks", done, ".wait") == b"COMPLETED\n"
    assert read(m, "by-status", "FAILED", failed, ".wait") == b"FAILED\n"
    st = os.stat(m.p("tasks", done, ".wait"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == len("COMPLETED\n")
    assert server.requests()["total"] == 0
    assert kept(m) == (0, 0)


def test_wait_is_not_listed(server, main_tasks, mounter):
    m = mounter(server)
    tid = mfs.plain_ids(mfs.ids_where(main_tasks, status="PROCESSING"))[0]
    r = mfs.sh("ls -a tasks/%s" % tid, m.path)
    assert ".wait" not in mfs.lines(r.out) and ".refresh" not in r.out
    r = mfs.sh("find by-status/PROCESSING/%s" % tid, m.path)
    assert r.out and ".wait" not in r.out
    # but it is there, a file that only its owner's tasks can read
    st = os.stat(m.p("tasks", tid, ".wait"))
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
    # only in task folders
    for where in (("tasks",), ("by-status", "PROCESSING"), ()):
        e = mfs.errno_of(os.stat, m.p(*(where + (".wait",))))
        assert e == errno.ENOENT, mfs.errname(e)


# ---------------------------------------------------------------------------
# a running task: the wait ends when the task does

def test_wait_ends_within_a_second_of_the_change(server, main_tasks,
                                                 mounter):
    tid = "task_wait_change"
    with one_reader(server, main_tasks, mounter, tid) as (m, cat):
        got(server, tid, 2, cat)
        before = time.time()
        server.update_task(tid, {"status": "FAILED"})
        done = ended(cat)
        out, err = cat.communicate()
        assert (cat.returncode, out, err) == (0, b"FAILED\n", b"")
        # the last GET is the one that answered: the wait stops polling
        gets = gets_of(server.log(), tid)
        answered = gets[-1]["time"]
        assert answered >= before - mfs.CLOCK_SLACK
        assert done - answered <= WITHIN, (done, answered)
        wait_until(lambda: kept(m) == (0, 0), 30, "the wait to be over")
        assert len(gets_of(server.log(), tid)) == len(gets)


def test_a_listing_that_shows_the_end_ends_the_wait(server, main_tasks,
                                                    mounter):
    tid = "task_wait_listed"
    with one_reader(server, main_tasks, mounter, tid) as (m, cat):
        # the lookup's GET, then polls 1, 2 and 4 s apart: the next one
        # is 8 s away
        polls = got(server, tid, 4, cat)
        server.update_task(tid, {"status": "COMPLETED"})
        before = time.time()
        listed = os.listdir(m.p("by-status", "COMPLETED"))
        done = ended(cat)
        assert tid in listed
        out, _ = cat.communicate()
        assert (cat.returncode, out) == (0, b"COMPLETED\n")
        log = server.log()
        assert len(gets_of(log, tid)) == polls, "a poll ended it"
        lists = [e for e in mfs.list_entries(log)
                 if e["time"] >= before - mfs.CLOCK_SLACK]
        assert lists, "by-status/COMPLETED was not fetched"
        assert done - max(e["time"] for e in lists) <= WITHIN


def test_fifty_waiters_one_poll_per_interval(server, main_tasks, mounter):
    tid = "task_wait_fifty"
    task = new_task(server, main_tasks, tid)
    m = mounter(server)
    folders = [("tasks",), ("by-status", "PROCESSING"),
               ("by-type", mfs.escape_name(task["task_type"]))]
    cats = [start_cat(m.p(*(folders[i % 3] + (tid, ".wait"))))
            for i in range(50)]
    try:
        # one kept READ per path (the kernel has the others wait on it)
        wait_until(lambda: kept(m)[1] == 1 and kept(m)[0] >= 3, 60,
                   "the reads to be kept", alive=still(*cats))
        start = time.time()
        wait_until(lambda: len([e for e in gets_of(server.log(), tid)
                                if e["time"] >= start]) >= 3, 60,
                   "three polls")
        assert all(c.poll() is None for c in cats)
        assert kept(m)[1] == 1
        times = [e["time"] for e in gets_of(server.log(), tid)
                 if e["time"] >= start]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # one poller: a second at least between two polls, then longer
        assert min(gaps) >= 0.9, gaps
        assert gaps[-1] >= 1.8, gaps
        server.update_task(tid, {"status": "COMPLETED_WITH_ERRORS"})
        for c in cats:
            ended(c)
            out, err = c.communicate()
            assert (c.returncode, out, err) == \
                (0, b"COMPLETED_WITH_ERRORS\n", b"")
        assert kept(m) == (0, 0)
    finally:
        no_hung(cats)


# ---------------------------------------------------------------------------
# how a wait ends otherwise

def test_ctrl_c_ends_the_read_at_once(server, main_tasks, mounter):
    tid = "task_wait_sigint"
    with one_reader(server, main_tasks, mounter, tid) as (m, cat):
        t0 = time.monotonic()
        cat.send_signal(signal.SIGINT)
        wait_until(lambda: cat.poll() is not None, 10, "cat to end")
        took = time.monotonic() - t0
        assert cat.returncode == -signal.SIGINT
        assert took <= 0.5, took
        # the daemon had the READ answered (EINTR): it keeps none
        wait_until(lambda: kept(m) == (0, 0), 10, "the read to be dropped")
    # a reader that catches the signal sees its read fail with EINTR
    code = ("import os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "try:\n"
            "    os.read(fd, 100)\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted')\n")
    py = subprocess.Popen([sys.executable, "-c", code,
                           m.p("tasks", tid, ".wait")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        waiting(m, 1, 1, [py])
        py.send_signal(signal.SIGINT)
        ended(py, 10)
        out, err = py.communicate()
        assert (py.returncode, out) == (0, b"interrupted\n"), err
        wait_until(lambda: kept(m) == (0, 0), 10, "the read to be dropped")
    finally:
        no_hung([py])
    # and the daemon is fine
    server.update_task(tid, {"status": "CANCELED"})
    assert read(m, "tasks", tid, ".wait") == b"CANCELED\n"


def test_a_task_that_goes_away_ends_the_wait_enoent(server, main_tasks,
                                                    mounter):
    tid = "task_wait_gone"
    with one_reader(server, main_tasks, mounter, tid) as (m, cat):
        server.reset(dataset=True)      # the added task is gone: 404
        ended(cat)
        out, err = cat.communicate()
        assert cat.returncode == 1 and out == b""
        assert os.strerror(errno.ENOENT).encode() in err, err
        # its GET said 404; the list, asked then (a task GET no longer
        # finds may still be listed: test_published.py), has it not
        gets = [e for e in gets_of(server.log(), tid)
                if e["method"] == "GET"]
        assert gets[-1]["status"] == 404
        assert kept(m) == (0, 0)


def test_wait_max_ends_with_etimedout_and_no_page_cache(server, main_tasks,
                                                       mounter):
    tid = "task_wait_max"
    new_task(server, main_tasks, tid)
    m = mounter(server, extra_opts=["wait_max=2"])
    path = m.p("tasks", tid, ".wait")
    assert read(m, ".mixpeekfs", "config").decode().count("wait_max 2\n")
    t0 = time.monotonic()
    e = mfs.errno_of(read, m, "tasks", tid, ".wait")
    assert e == errno.ETIMEDOUT, mfs.errname(e)
    took = time.monotonic() - t0
    # once: not again for the kernel's second try of the failed READ
    assert 2 - 0.05 <= took < 2 * 2 - 0.5, took
    # a read before the task ended, one after: different answers
    server.update_task(tid, {"status": "COMPLETED"})
    assert read(m, "tasks", tid, ".wait") == b"COMPLETED\n"
    # and from then on at once, with no request
    server.reset()
    for _ in range(3):
        with open(path, "rb") as f:
            assert f.read() == b"COMPLETED\n"
    assert server.requests()["total"] == 0


def test_an_outage_longer_than_timeout_ends_with_eio(server, main_tasks,
                                                     mounter):
    tid = "task_wait_outage"
    with one_reader(server, main_tasks, mounter, tid,
                    extra_opts=["timeout=2", "retries=0"]) as (m, cat):
        server.faults(error_rate=1.0, error_status=503)
        done = ended(cat)
        out, err = cat.communicate()
        assert cat.returncode == 1 and out == b""
        assert os.strerror(errno.EIO).encode() in err, err
        failed = [e for e in gets_of(server.log(), tid) if e["status"] == 503]
        assert len(failed) >= 2, failed
        # not before the polls had failed for timeout seconds
        assert failed[-1]["time"] - failed[0]["time"] >= 2 - 0.2
        assert done - failed[-1]["time"] <= WITHIN


def test_sigterm_answers_every_kept_read(server, main_tasks, mounter):
    tid = "task_wait_sigterm"
    new_task(server, main_tasks, tid)
    m = mounter(server)
    cats = [start_cat(m.p("tasks", tid, ".wait")),
            start_cat(m.p("by-status", "PROCESSING", tid, ".wait"))]
    try:
        waiting(m, 2, 1, cats)
        os.kill(m.proc.pid, signal.SIGTERM)
        for c in cats:
            ended(c, 30)
            out, err = c.communicate()
            assert c.returncode == 1 and out == b"", err
            assert os.strerror(errno.EIO).encode() in err, err
        assert m.proc.wait(30) == 0
        assert m.unmount() == []
    finally:
        no_hung(cats)


def test_lazy_unmount_lets_the_wait_end_then_the_daemon_exits(
        server, main_tasks, mounter):
    tid = "task_wait_lazy"
    with one_reader(server, main_tasks, mounter, tid) as (m, cat):
        r = subprocess.run(["fusermount3", "-uz", m.path],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert not mfs.mounted(m.path)
        assert cat.poll() is None and m.proc.poll() is None
        server.update_task(tid, {"status": "COMPLETED"})
        ended(cat)
        assert cat.communicate()[0] == b"COMPLETED\n"
        # the last file closed: the kernel ends the session
        assert m.proc.wait(30) == 0
        assert m.unmount() == []


# ---------------------------------------------------------------------------
# many waiters leave the rest of the mount as it was

@pytest.mark.timeout(400)
def test_two_hundred_waiters_leave_the_mount_usable(server, main_tasks,
                                                    mounter):
    tids = ["task_wait_many_%02d" % i for i in range(20)]
    for tid in tids:
        new_task(server, main_tasks, tid)
    m = mounter(server)
    cats = []
    try:
        for i in range(200):
            # each task by two paths: two files, five readers each
            where = ("tasks",) if i // 20 % 2 else ("by-status",
                                                      "PROCESSING")
            cats.append(start_cat(m.p(*(where + (tids[i % 20], ".wait")))))
        # one kept READ per path at least (the kernel may have readers of
        # one file wait on one READ)
        wait_until(lambda: kept(m)[1] == 20 and kept(m)[0] >= 40, 120,
                   "every reader to wait", alive=still(*cats))
        tasks = server.dataset()
        failed = mfs.ids_where(tasks, status="FAILED")
        r = mfs.sh("ls by-status/FAILED", m.path, timeout=120)
        assert sorted(mfs.lines(r.out)) == names(failed)
        done = mfs.plain_ids(mfs.ids_where(tasks, status="COMPLETED"))[:5]
        for tid in done:
            r = mfs.sh("cat tasks/%s/status tasks/%s/.wait" % (tid, tid),
                       m.path, timeout=60)
            assert r.out == "COMPLETED\nCOMPLETED\n"
        assert all(c.poll() is None for c in cats)
        for tid in tids:
            server.update_task(tid, {"status": "COMPLETED"})
        for c in cats:
            ended(c, 120)
            out, err = c.communicate()
            assert (c.returncode, out, err) == (0, b"COMPLETED\n", b"")
        assert kept(m) == (0, 0)
    finally:
        no_hung(cats)
