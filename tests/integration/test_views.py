"""A whole listing in one file (.jsonl, .tsv) and extended attributes.

In every listing folder (tasks/, by-status/S/, by-type/T/, any query
folder) two files that no folder lists:

* ``.jsonl``: each task of the listing, in its order, as the API's JSON on
  one line;
* ``.tsv``: ``task_id	task_type	status	error``, then a line per task; a
  tab, a newline, a backslash and any other control byte in a value are
  written ``\\t``, ``\\n``, ``\\\\``, ``\\r``, ``\\xNN``.

Every node inside a task has the extended attributes user.mixpeek.task_id,
user.mixpeek.task_type and user.mixpeek.status.

Expectations come from the test server's data set (or the tasks we put on
it), in the server's default order; orders of sorted query folders from
test_query.sort_tasks. Request counts come from the server's log.
"""

import errno
import json
import os
import shutil
import time

import pytest

import mfs
from mfs import ids_where, read
from test_query import sort_tasks

XATTRS = ("user.mixpeek.status", "user.mixpeek.task_id",
          "user.mixpeek.task_type")
VIEWS = (".jsonl", ".tsv")


# ---------------------------------------------------------------------------
# expectations

def esc(value):
    """A .tsv value: bytes with tab, newline, CR, backslash and other
    control bytes escaped (text.c's rule)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    out = bytearray()
    for b in value:
        if b == 0x0a:
            out += b"\\n"
        elif b == 0x0d:
            out += b"\\r"
        elif b == 0x09:
            out += b"\\t"
        elif b == 0x5c:
            out += b"\\\\"
        elif b < 0x20 or b == 0x7f:
            out += b"\\x%02x" % b
        else:
            out.append(b)
    return bytes(out)


def unesc(field):
    """Undo esc (a reader's view of the format)."""
    out = bytearray()
    i = 0
    while i < len(field):
        if field[i:i + 1] != b"\\":
            out += field[i:i + 1]
            i += 1
            continue
        c = field[i + 1:i + 2]
        if c == b"x":
            out.append(int(field[i + 2:i + 4], 16))
            i += 4
            continue
        out += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\"}[c]
        i += 2
    return bytes(out)


def error_text(task):
    """The error text: the first of error, error_message and
    additional_data.error that shows as a file with something in it, as
    cat shows it without its last newline."""
    ad = task.get("additional_data")
    for v in (task.get("error"), task.get("error_message"),
              ad.get("error") if isinstance(ad, dict) else None):
        node = mfs.expected_node(v)
        if isinstance(node, mfs.ExpFile):
            text = node.canonical()[:-1]
            if text:
                return text
    return b""


def tsv_of(tasks):
    lines = [b"task_id\ttask_type\tstatus\terror\n"]
    for t in tasks:
        lines.append(b"\t".join([esc(t["task_id"]), esc(t["task_type"]),
                                 esc(t["status"]), esc(error_text(t))])
                     + b"\n")
    return b"".join(lines)


def jsonl_tasks(data):
    """The tasks of a .jsonl, one JSON object per line, each line whole."""
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    out = []
    for line in data.split(b"\n")[:-1]:
        assert line and b"\r" not in line, line[:200]
        out.append(json.loads(line.decode("utf-8", "surrogatepass")))
    return out


def where(tasks, **match):
    return [t for t in tasks if all(t.get(k) == v for k, v in match.items())]


def common_type(tasks, status):
    counts = {}
    for t in where(tasks, status=status):
        counts[t["task_type"]] = counts.get(t["task_type"], 0) + 1
    return max(sorted(counts), key=lambda k: counts[k])


def folders(tasks):
    """(folder, expected tasks in order): plain, group, query and sorted."""
    ttype = common_type(tasks, "FAILED")
    failed = where(tasks, status="FAILED")
    return [
        ("tasks", tasks),
        ("by-status/FAILED", failed),
        ("by-status/PROCESSING", where(tasks, status="PROCESSING")),
        ("by-type/" + ttype, where(tasks, task_type=ttype)),
        ("by-status/FAILED/task_type=" + ttype,
         where(failed, task_type=ttype)),
        ("tasks/@sort=created_at", sort_tasks(tasks, "created_at", False)),
        ("by-status/COMPLETED/@sort=-created_at/@limit=25",
         sort_tasks(where(tasks, status="COMPLETED"), "created_at",
                    True)[:25]),
    ]


def no_requests(server, what):
    log = server.log()
    assert log == [], "%s cost requests: %r" % (what, log[:3])


# ---------------------------------------------------------------------------
# .jsonl and .tsv

def test_jsonl_and_tsv_equal_the_listing(server, mounter, main_tasks):
    """Parsed line by line, in order, equal to the server's data, with an
    exact size on stat; no request beyond the listing's own fetch."""
    m = mounter(server, page_size=100, ttl=600)
    for folder, tasks in folders(main_tasks):
        assert tasks, folder
        server.reset()
        st = os.stat(m.p(folder, ".jsonl"))
        jsonl = read(m, folder, ".jsonl")
        assert st.st_size == len(jsonl), folder
        assert jsonl_tasks(jsonl) == tasks, folder
        # only the listing: its pages, never a task by itself
        log = server.log()
        assert mfs.get_entries(log) == [], folder
        lists = mfs.list_entries(log)
        assert 1 <= len(lists) <= mfs.pages(len(tasks), 100), folder
        server.reset()
        st = os.stat(m.p(folder, ".tsv"))
        tsv = read(m, folder, ".tsv")
        assert tsv == tsv_of(tasks), folder
        assert st.st_size == len(tsv), folder
        # the folder itself, again: the same listing
        assert os.listdir(m.p(folder)) == \
            [mfs.escape_name(t["task_id"]) for t in tasks], folder
        no_requests(server, "the .tsv and ls after the .jsonl of " + folder)


def test_jsonl_after_ls_costs_nothing(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    failed = where(main_tasks, status="FAILED")
    assert os.listdir(m.p("by-status", "FAILED"))
    server.reset()
    r = mfs.sh("grep -c . by-status/FAILED/.jsonl; wc -l < by-status/FAILED"
               "/.tsv; jq -r .task_id by-status/FAILED/.jsonl | head -3",
               m.path)
    assert r.out.split("\n")[:2] == [str(len(failed)), str(len(failed) + 1)]
    assert r.out.split("\n")[2:5] == [t["task_id"] for t in failed[:3]]
    no_requests(server, "reading the views of a listed folder")


def test_issue_examples(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    failed = where(main_tasks, status="FAILED")
    oom = [t["task_id"] for t in failed
           if isinstance(t.get("error"), str) and "OOM" in t["error"]]
    assert oom
    r = mfs.sh("jq -r 'select(.error|test(\"OOM\")) | .task_id' "
               "by-status/FAILED/.jsonl", m.path)
    assert mfs.lines(r.out) == oom
    counts = {}
    for t in failed:
        counts[t["task_type"]] = counts.get(t["task_type"], 0) + 1
    r = mfs.sh("tail -n +2 by-status/FAILED/.tsv | cut -f2 | sort | "
               "uniq -c | sort -rn", m.path)
    got = {}
    for line in mfs.lines(r.out):
        n, ttype = line.split()
        got[ttype] = int(n)
    assert got == counts
    r = mfs.sh("wc -l < tasks/status=PROCESSING/.jsonl", m.path)
    assert int(r.out) == len(where(main_tasks, status="PROCESSING"))


def test_never_listed(server, mounter, main_tasks):
    """ls -a, find and grep -r never see the views (nor twice a task)."""
    m = mounter(server, page_size=100, ttl=600)
    for folder in ("tasks", "by-status/FAILED", "by-status/FAILED/@limit=3"):
        r = mfs.sh("ls -a %s" % folder, m.path)
        got = mfs.lines(r.out)
        for v in VIEWS:
            assert v not in got, folder
        assert not set(VIEWS) & set(os.listdir(m.p(folder)))
    # the views exist all the same
    assert os.path.isfile(m.p("by-status", "FAILED", ".jsonl"))
    assert os.path.isfile(m.p("by-status", "FAILED", ".tsv"))
    r = mfs.sh("find by-status/FAILED -name '.*' | wc -l; find by-status/"
               "FAILED -maxdepth 1 | wc -l", m.path)
    n_failed = len(where(main_tasks, status="FAILED"))
    assert r.out.split() == ["0", str(n_failed + 1)]
    word = "timeout"
    expect = [t for t in where(main_tasks, status="FAILED")
              if isinstance(t.get("error"), str) and word in t["error"]]
    r = mfs.sh("grep -rl %s by-status/FAILED | grep -c '^by-status/FAILED/[^/]*/error$'; "
               "grep -rl %s by-status/FAILED | grep -c jsonl" % (word, word),
               m.path, check=False)
    assert r.out.split() == [str(len(expect)), "0"]
    # not in the root, a task folder or .mixpeekfs/
    tid = mfs.escape_name(main_tasks[0]["task_id"])
    for where_ in ("", "by-status", ".mixpeekfs", "tasks/" + tid):
        assert mfs.errno_of(os.stat, m.p(where_, ".jsonl")) == errno.ENOENT


def test_tsv_round_trips_hostile_values(weird_server, mounter):
    """Tabs, newlines, backslashes and other control bytes in ids, types,
    statuses and errors; error_message and additional_data.error as
    fall-backs; odd ids (--weird)."""
    srv = weird_server
    srv.reset()
    base = {"description": "view test", "inputs": None, "outputs": None,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z"}
    puts = [
        dict(base, task_id="view_tab\tid", task_type="plugin_custom",
             status="FAILED", error="a\tb\nc\\d\re\x01f \u00e9",
             additional_data={"error": "not this one"}),
        dict(base, task_id="view_msg", task_type="plugin_custom",
             status="FAILED", error=None, error_message="only\tmessage",
             additional_data={}),
        dict(base, task_id="view_ad", task_type="plugin_custom",
             status="FAILED", error="", additional_data={
                 "error": "line one\nline two\\"}),
        dict(base, task_id="view_none", task_type="plugin_custom",
             status="FAILED", error=None, additional_data=None),
        dict(base, task_id="view_num", task_type="plugin_custom",
             status="FAILED", error=42, additional_data=None),
        dict(base, task_id="view_ctl_status", task_type="odd\ttype",
             status="FAILED\nX", error="x", additional_data=None),
    ]
    try:
        for t in puts:
            mfs.put_task(srv, t)
        tasks = srv.dataset()
        m = mounter(srv, page_size=50, ttl=600)
        tsv = read(m, "tasks", ".tsv")
        assert tsv == tsv_of(tasks)
        rows = tsv.split(b"\n")
        assert rows[0] == b"task_id\ttask_type\tstatus\terror"
        assert rows[-1] == b"" and len(rows) == len(tasks) + 2
        by_id = {}
        for row in rows[1:-1]:
            cols = row.split(b"\t")
            assert len(cols) == 4, row
            by_id[unesc(cols[0]).decode()] = [unesc(c) for c in cols[1:]]
        assert by_id["view_tab\tid"] == [
            b"plugin_custom", b"FAILED", "a\tb\nc\\d\re\x01f \u00e9".encode()]
        assert by_id["view_msg"][2] == b"only\tmessage"
        assert by_id["view_ad"][2] == b"line one\nline two\\"
        assert by_id["view_none"][2] == b""
        assert by_id["view_num"][2] == b"42"
        assert by_id["view_ctl_status"][:2] == [b"odd\ttype", b"FAILED\nX"]
        for i in ("task/evil", "..", "task_" + "x" * 295):
            assert i in by_id
        # the .jsonl of the same folder: whole lines, the same tasks
        assert jsonl_tasks(read(m, "tasks", ".jsonl")) == tasks
        # a status folder that holds some of them
        failed = where(tasks, status="FAILED")
        assert read(m, "by-status", "FAILED", ".tsv") == tsv_of(failed)
        assert jsonl_tasks(read(m, "by-status", "FAILED", ".jsonl")) == \
            failed
    finally:
        srv.reset(dataset=True)


@pytest.mark.timeout(150)
def test_views_follow_refresh_and_ttl(server, mounter, main_tasks):
    ttl = 3
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["ttl_terminal=600"])
    failed = where(main_tasks, status="FAILED")
    first = read(m, "by-status", "FAILED", ".jsonl")
    assert jsonl_tasks(first) == failed
    fresh = mfs.fresh_until(server.log(), ttl)
    mtime = os.stat(m.p("by-status", "FAILED", ".jsonl")).st_mtime_ns

    # a task becomes FAILED: within the ttl nothing changes, no request
    moved = where(main_tasks, status="PROCESSING")[0]
    server.update_task(moved["task_id"], {"status": "FAILED"})
    server.reset()
    again = read(m, "by-status", "FAILED", ".jsonl")
    st = os.stat(m.p("by-status", "FAILED", ".jsonl"))
    assert time.time() < fresh, "the machine is too slow for this ttl"
    assert again == first and st.st_mtime_ns == mtime
    no_requests(server, "a view within its ttl")

    # .refresh of the folder: the view shows the new listing at once
    mfs.sh("cat by-status/FAILED/.refresh", m.path)
    expected = where(server.dataset(), status="FAILED")
    assert moved["task_id"] in [t["task_id"] for t in expected]
    server.reset()
    got = read(m, "by-status", "FAILED", ".jsonl")
    assert jsonl_tasks(got) == expected
    st = os.stat(m.p("by-status", "FAILED", ".jsonl"))
    assert st.st_size == len(got) and st.st_mtime_ns != mtime
    assert read(m, "by-status", "FAILED", ".tsv") == tsv_of(expected)
    no_requests(server, "the views right after .refresh")

    # a task changes inside: past the ttl the view shows it
    tid = failed[0]["task_id"]
    server.update_task(tid, {"description": "views: changed"})
    mfs.wait_past_ttl(ttl, time.time())
    server.reset()
    got = read(m, "by-status", "FAILED", ".jsonl")
    expected = where(server.dataset(), status="FAILED")
    assert jsonl_tasks(got) == expected
    assert [t for t in jsonl_tasks(got) if t["task_id"] == tid][0][
        "description"] == "views: changed"
    assert os.stat(m.p("by-status", "FAILED", ".jsonl")).st_size == len(got)
    log = server.log()
    assert mfs.get_entries(log) == []
    assert 1 <= len(mfs.list_entries(log)) <= mfs.pages(len(expected), 100)


def test_view_of_bad_query_is_einval(server, mounter):
    m = mounter(server, page_size=100, ttl=600)
    assert mfs.errno_of(os.stat, m.p("tasks", "@limit=x", ".jsonl")) == \
        errno.EINVAL
    server.faults(fail_next=50, error_status=500)
    assert mfs.errno_of(read, m, "by-status", "CANCELED", ".jsonl") == \
        errno.EIO


# ---------------------------------------------------------------------------
# extended attributes

def xattrs_of(path):
    return {n: os.getxattr(path, n) for n in os.listxattr(path)}


def expected_xattrs(task):
    return {"user.mixpeek.task_id": task["task_id"].encode(),
            "user.mixpeek.task_type": task["task_type"].encode(),
            "user.mixpeek.status": task["status"].encode()}


def test_xattrs_equal_the_task_fields(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    failed = where(main_tasks, status="FAILED")
    ttype = common_type(main_tasks, "FAILED")
    server.reset()
    got = {}
    for name in os.listdir(m.p("by-status", "FAILED")):
        got[name] = xattrs_of(m.p("by-status", "FAILED", name))
    assert got == {mfs.escape_name(t["task_id"]): expected_xattrs(t)
                   for t in failed}
    assert mfs.get_entries(server.log()) == [], \
        "xattrs of listed tasks asked for the tasks again"
    # every node inside a task, in other folders too
    for folder, t in (("tasks", main_tasks[3]),
                      ("by-type/" + ttype, where(main_tasks,
                                                 task_type=ttype)[0]),
                      ("by-status/FAILED/task_type=" + ttype,
                       where(failed, task_type=ttype)[0])):
        d = m.p(folder, mfs.escape_name(t["task_id"]))
        for sub in ("", "status", "task.json", "additional_data",
                    "additional_data/bucket_id"):
            p = os.path.join(d, sub)
            assert sorted(os.listxattr(p)) == list(XATTRS), p
            assert xattrs_of(p) == expected_xattrs(t), p
        assert os.getxattr(d, "user.mixpeek.status") == \
            read(m, folder, mfs.escape_name(t["task_id"]), "status")[:-1]


def test_xattr_errors(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    d = m.p("tasks", mfs.escape_name(main_tasks[0]["task_id"]))
    f = os.path.join(d, "status")
    for p in (d, f):
        assert mfs.errno_of(os.getxattr, p, "user.foo") == errno.ENODATA
        assert mfs.errno_of(os.getxattr, p, "user.mixpeek.other") == \
            errno.ENODATA
        # no ACLs, no labels: not supported (ls -l asks once, not per file)
        assert mfs.errno_of(os.getxattr, p, "system.posix_acl_access") == \
            errno.EOPNOTSUPP
        assert mfs.errno_of(os.getxattr, p, "security.selinux") == \
            errno.EOPNOTSUPP
        # writes: the mount is read-only
        for name in ("user.mixpeek.status", "user.new"):
            assert mfs.errno_of(os.setxattr, p, name, b"x") == errno.EROFS
            assert mfs.errno_of(os.removexattr, p, name) == errno.EROFS
        # a buffer too small for the value or the names
        assert mfs.errno_of(os.getxattr, p, "user.mixpeek.task_id") is None
    # outside a task: none, but a listing folder's count
    for p in ("", "tasks", "by-status", "by-status/FAILED", "README",
              "by-status/FAILED/.jsonl", ".mixpeekfs/config"):
        listing = p in ("tasks", "by-status/FAILED")
        assert os.listxattr(m.p(p)) == (
            ["user.mixpeek.count"] if listing else []), p
        assert mfs.errno_of(os.getxattr, m.p(p), "user.mixpeek.status") \
            == errno.ENODATA, p
    r = mfs.sh("python3 -c 'import ctypes, os, sys\n"
               "libc = ctypes.CDLL(None, use_errno=True)\n"
               "buf = ctypes.create_string_buffer(3)\n"
               "n = libc.getxattr(sys.argv[1].encode(), "
               "b\"user.mixpeek.task_id\", buf, 3)\n"
               "print(n, ctypes.get_errno() == 34)' %s" % d, m.path)
    assert r.out.split() == ["-1", "True"]  # ERANGE


def test_getfattr(server, mounter, main_tasks):
    if shutil.which("getfattr") is None:
        pytest.skip("getfattr is not installed (package attr)")
    m = mounter(server, page_size=100, ttl=600)
    t = main_tasks[5]
    name = mfs.escape_name(t["task_id"])
    r = mfs.sh("getfattr -d tasks/%s" % name, m.path)
    assert mfs.lines(r.out) == [
        "# file: tasks/%s" % name,
        'user.mixpeek.status="%s"' % t["status"],
        'user.mixpeek.task_id="%s"' % t["task_id"],
        'user.mixpeek.task_type="%s"' % t["task_type"]]
    r = mfs.sh("getfattr --only-values -n user.mixpeek.status "
               "tasks/%s/additional_data" % name, m.path)
    assert r.out == t["status"]
    r = mfs.sh("setfattr -n user.x -v 1 tasks/%s" % name, m.path,
               check=False)
    assert r.returncode != 0 and "Read-only file system" in r.err


def test_xattrs_of_weird_ids(weird_server, mounter):
    srv = weird_server
    srv.reset()
    tasks = srv.dataset()
    m = mounter(srv, page_size=50, ttl=600)
    os.listdir(m.p("tasks"))
    for tid in ("task/evil", "..", "task_" + "x" * 295, "task_weird_keys"):
        t = [x for x in tasks if x["task_id"] == tid][0]
        p = m.p("tasks", mfs.escape_name(tid))
        assert xattrs_of(p) == expected_xattrs(t), tid


@pytest.mark.timeout(300)
def test_concurrent_readers_see_whole_views(server, mounter, main_tasks):
    """Readers of one view at once, while the folder is refreshed and
    tasks' attributes are read: every read is the whole, exact file."""
    import threading
    m = mounter(server, page_size=100, ttl=600)
    failed = where(main_tasks, status="FAILED")
    want_tsv = tsv_of(failed)
    problems = []

    def reader(view):
        for _ in range(6):
            try:
                with open(m.p("by-status", "FAILED", view), "rb") as f:
                    data = f.read()
                if view == ".jsonl":
                    ok = jsonl_tasks(data) == failed
                else:
                    ok = data == want_tsv
                if not ok:
                    problems.append("%s: %d bytes" % (view, len(data)))
                for t in failed[:20]:
                    p = m.p("by-status", "FAILED",
                            mfs.escape_name(t["task_id"]))
                    if xattrs_of(p) != expected_xattrs(t):
                        problems.append("xattrs of " + t["task_id"])
            except Exception as e:  # reported below
                problems.append("%s: %r" % (view, e))

    threads = [threading.Thread(target=reader, args=(v,))
               for v in VIEWS * 4]
    for t in threads:
        t.start()
    for _ in range(3):
        mfs.sh("cat by-status/FAILED/.refresh", m.path)
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads)
    assert problems == []
