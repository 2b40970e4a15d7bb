"""Hostile list and get replies (the test server's ``bad`` modes).

Each mode gets a fresh mount with several pages per listing. Whatever the
server sends, the daemon must stay up, a listing must either be complete
and correct (each task once) or fail cleanly with EIO, it must finish
within a bound, and stderr must say what happened without a crash report.
"""

import errno
import json
import os
import time

import pytest

import mfs
from mfs import errname, ids_where

PAGE = 50
FOLDER = ("by-status", "FAILED")      # 132 tasks: pages of 50, 50, 32
OTHER = ("by-type", "thumbnail")      # listed only after the fault is gone
LIST_BOUND = 30                       # seconds for one listing attempt

# What a mode may do to a listing: "eio" (must fail with EIO), "ok" (must
# succeed with the right entries), "either" (one of the two).
MODES = {
    "truncated_json": "eio",
    "wrong_types": "ok",
    "missing_task_id": "ok",
    "duplicate_ids": "ok",
    "deep_nesting": "ok",
    "huge_body": "eio",
    "short_page": "either",
    "long_page": "either",
    "cursor_loop": "either",
}

CRASH_WORDS = ("AddressSanitizer", "runtime error", "LeakSanitizer",
               "Segmentation", "Aborted", "core dumped", "Assertion",
               "stack overflow", "double free")


def hostile():
    """The test server's own damage function (mixpeek_server.hostile_task)."""
    mfs.import_dataset()
    import mixpeek_server  # noqa: E402  (tests/server/mixpeek_server.py)
    return mixpeek_server.hostile_task


def timed_listdir(path):
    """(names or None, errno or None, seconds)."""
    t0 = time.monotonic()
    try:
        names = os.listdir(path)
        err = None
    except OSError as e:
        names, err = None, e.errno
    return names, err, time.monotonic() - t0


def check_task_folder(path, expected_task):
    """Differences between a task folder and the task it must show."""
    tree, problems = mfs.read_tree(path)
    raw = tree.pop("task.json", None)
    if raw is None:
        problems.append("%s: no task.json" % path)
    else:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            problems.append("%s/task.json is not JSON (%s): %r"
                            % (path, e, raw[:200]))
        else:
            if doc != expected_task:
                problems.append("%s/task.json differs from the task sent"
                                % path)
    problems.extend(mfs.compare_tree(mfs.expected_task_tree(expected_task),
                                     tree, path))
    return problems


def assert_alive(m):
    assert m.proc.poll() is None, \
        "mixpeekfs died (rc %s); stderr:\n%s" % (m.proc.returncode,
                                                 m.stderr()[-4000:])


def assert_no_crash_text(m):
    err = m.stderr()
    for w in CRASH_WORDS:
        assert w not in err, "daemon stderr contains %r:\n%s" % (
            w, err[-4000:])


def assert_recovers(server, m, main_tasks):
    """After the fault is gone the mount answers, with correct data."""
    server.faults()
    assert_alive(m)
    r = mfs.sh("ls by-type", m.path, timeout=60)
    assert len(mfs.lines(r.out)) == 30, r.out
    want = ids_where(main_tasks, task_type=OTHER[1])
    got = os.listdir(m.p(*OTHER))
    assert sorted(got) == sorted(mfs.escape_name(i) for i in want)
    got = os.listdir(m.p(*FOLDER))
    assert len(got) == len(set(got)), "duplicate entries after recovery"
    assert_alive(m)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_bad_mode(server, mounter, main_tasks, mode):
    extra = ["retries=0", "timeout=20"]
    if mode == "huge_body":
        extra.append("max_response=1M")
    m = mounter(server, page_size=PAGE, ttl=600, extra_opts=extra)
    listing = [t for t in main_tasks if t["status"] == FOLDER[1]]
    assert len(listing) > 2 * PAGE, "the folder must span several pages"

    server.faults(bad=mode)
    try:
        names, err, took = timed_listdir(m.p(*FOLDER))
        assert took < LIST_BOUND, "listing took %.1fs" % took
        assert_alive(m)
        allowed = MODES[mode]
        if allowed == "eio":
            assert err == errno.EIO, "want EIO, got %s (%s)" % (
                errname(err), "%d entries" % len(names) if names else "")
        elif allowed == "ok":
            assert err is None, "want a listing, got %s" % errname(err)
        else:
            assert err in (None, errno.EIO), \
                "want a listing or EIO, got %s" % errname(err)

        if err is None:
            assert len(names) == len(set(names)), "duplicate entries: %r" % (
                sorted(n for n in set(names) if names.count(n) > 1),)
            if mode == "missing_task_id":
                # every third result of each page (from its first) has no
                # id: those are skipped, the others of the page are shown
                want = [t["task_id"] for i, t in enumerate(listing)
                        if (i % PAGE) % 3 != 0]
            elif mode == "deep_nesting":
                # the first result of each page is nested deeper than the
                # parser goes: it is skipped, the rest of the page is shown
                want = [t["task_id"] for i, t in enumerate(listing)
                        if i % PAGE != 0]
            else:
                want = [t["task_id"] for t in listing]
            want_names = sorted(mfs.escape_name(i) for i in want)
            missing = sorted(set(want_names) - set(names))
            extra_names = sorted(set(names) - set(want_names))
            assert not missing and not extra_names, \
                "listing of %d entries (want %d): missing %d %r, " \
                "unexpected %r; daemon stderr:\n%s" % (
                    len(names), len(want_names), len(missing), missing[:5],
                    extra_names[:5], m.stderr()[-2000:])

            # Every listed task reads as the server sent it.
            damage = hostile()
            problems = []
            for i, t in enumerate(listing):
                tid = t["task_id"]
                if mfs.escape_name(tid) not in names:
                    continue
                if mode == "deep_nesting" and i % PAGE == 0:
                    continue    # checked below
                sent = t
                if mode in ("wrong_types", "missing_task_id"):
                    sent = damage(t, i % PAGE, mode)
                problems.extend(check_task_folder(
                    m.p(FOLDER[0], FOLDER[1], mfs.escape_name(tid)), sent))
            assert not problems, "\n".join(problems[:20])
            if mode == "deep_nesting":
                # Walking the deep task ends (whatever it shows or refuses).
                deep = mfs.escape_name(listing[0]["task_id"])
                r = mfs.sh("find %s/%s/%s > /dev/null" % (FOLDER + (deep,)),
                           m.path, check=False, timeout=60)
                assert r.returncode in (0, 1), r.err[-500:]
                assert_alive(m)

        # A direct lookup of a task no listing has shown (GET) gets the
        # same damage: it reads correctly or fails with EIO.
        other = next(t for t in main_tasks if t["status"] != FOLDER[1] and
                     t["task_type"] != OTHER[1])
        tid = other["task_id"]
        t0 = time.monotonic()
        e = mfs.errno_of(os.stat, m.p("tasks", mfs.escape_name(tid)))
        took = time.monotonic() - t0
        assert took < LIST_BOUND, "lookup took %.1fs" % took
        assert e in (None, errno.EIO), "lookup: %s" % errname(e)
        if mode in ("truncated_json", "huge_body", "missing_task_id"):
            assert e == errno.EIO, \
                "lookup of a damaged task: want EIO, got %s" % errname(e)
        if e is None:
            with open(m.p("tasks", mfs.escape_name(tid), "task_id"),
                      "rb") as f:
                assert f.read() == tid.encode() + b"\n"
        assert_alive(m)
    finally:
        server.faults()

    err_text = m.stderr()
    assert_no_crash_text(m)
    if err is not None:
        # The failed request is logged (once per request, with its path).
        assert "/v1/tasks/list" in err_text, err_text[-3000:]
    if mode == "huge_body":
        assert "max_response" in err_text, err_text[-3000:]
    if mode in ("missing_task_id", "deep_nesting"):
        assert any("skipped" in l and "/v1/tasks/list" in l
                   for l in err_text.splitlines()), err_text[-3000:]
    assert_recovers(server, m, main_tasks)
    # A listing that failed under the fault now lists completely.
    want = ids_where(main_tasks, status=FOLDER[1])
    if err is not None:
        assert sorted(os.listdir(m.p(*FOLDER))) == \
            sorted(mfs.escape_name(i) for i in want)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["cursor_loop", "short_page"])
def test_bad_mode_in_deep_listing(big_server, mounter, mode):
    """A listing deeper than the offset cap pages by cursor in its middle:
    a cursor that repeats itself, or short pages, must end in EIO or in the
    complete listing, within a bound."""
    big_server.reset(faults=True)
    m = mounter(big_server, page_size=1000, ttl=600,
                extra_opts=["retries=0", "timeout=30"])
    big_server.faults(bad=mode)
    try:
        names, err, took = timed_listdir(m.p("tasks"))
    finally:
        big_server.faults()
    assert took < 120, "listing took %.1fs" % took
    assert_alive(m)
    assert err in (None, errno.EIO), errname(err)
    if err is None:
        assert len(names) == len(set(names)), "duplicate entries"
        assert len(names) == big_server.count, \
            "%d entries, want %d" % (len(names), big_server.count)
    else:
        assert "/v1/tasks/list" in m.stderr(), m.stderr()[-3000:]
    if mode == "cursor_loop" and err is not None:
        assert "cursor" in m.stderr(), m.stderr()[-3000:]
    assert_no_crash_text(m)
    names = os.listdir(m.p("tasks"))
    assert len(names) == big_server.count
