"""Faithful to the published API (issue 23): what mixpeekfs sends and
shows where the published schema allows more than our own data did.

Request bodies are read from the server's log (parsed there by Python's
json, which keeps integers exact); expectations come from the server's
data.
"""

import errno
import os

import pytest

import mfs


def conditions(body):
    """Every leaf condition of a list request body's filters."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            if "field" in node and "operator" in node:
                out.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk((body or {}).get("filters"))
    return out


# ---------------------------------------------------------------------------
# 3. query numbers as written

@pytest.mark.parametrize("text,value", [
    ("9007199254740993", 9007199254740993),
    ("12345678901234567890", 12345678901234567890),
    ("-0.5e-3", -0.0005),
])
def test_query_numbers_sent_as_written(server, mnt, text, value):
    folder = "additional_data.object_count=" + text
    server.reset()
    os.listdir(mnt.p("tasks", folder))
    sent = [c for e in mfs.list_entries(server.log())
            for c in conditions(mfs.body_of(e))
            if c["field"] == "additional_data.object_count"]
    assert sent, server.log()
    for c in sent:
        assert c["value"] == value and type(c["value"]) is type(value), c


@pytest.mark.parametrize("text", ["1e400", "-1E999"])
def test_query_number_json_cannot_carry_refused(server, mnt, text):
    server.reset()
    assert mfs.errno_of(os.listdir, mnt.p(
        "tasks", "additional_data.object_count=" + text)) == errno.EINVAL
    assert mfs.list_entries(server.log()) == []


# ---------------------------------------------------------------------------
# 4. schema-valid text that cJSON refuses

def test_lone_surrogate_task_shown(server, mounter, main_tasks):
    """A lone surrogate escape (valid JSON, valid in the schema): the task
    is listed and opened, task.json keeps the API's bytes, and the file
    shows a replacement character."""
    text = ('{"task_id": "task_lone_surrogate", "task_type": "thumbnail", '
            '"status": "FAILED", "inputs": [], "outputs": [], '
            '"additional_data": {}, "error": "bad \\ud800 byte"}')
    server.put_exact(text)
    m = mounter(server, page_size=100, ttl=600)
    failed = [t["task_id"] for t in main_tasks if t["status"] == "FAILED"]
    listed = os.listdir(m.p("by-status", "FAILED"))
    assert sorted(listed) == sorted(
        [mfs.escape_name(i) for i in failed] + ["task_lone_surrogate"])
    d = m.p("by-status", "FAILED", "task_lone_surrogate")
    with open(os.path.join(d, "task.json"), "rb") as f:
        assert b"bad \\ud800 byte" in f.read()
    with open(os.path.join(d, "error"), "rb") as f:
        assert f.read() == "bad \ufffd byte\n".encode()
    assert "task_lone_surrogate" in mfs.sh(
        "cat by-status/FAILED/.jsonl", m.path).out
    # and by GET, unlisted
    m2 = mounter(server, page_size=100, ttl=600)
    assert mfs.read(m2, "tasks", "task_lone_surrogate", "status") == \
        b"FAILED\n"


# ---------------------------------------------------------------------------
# 2. a listed task that GET no longer finds

def test_expired_task_asked_by_list(server, mounter, main_tasks):
    """Mixpeek: a task may leave the fast tier after about 24 h; GET then
    says 404 while the list still returns it. A listed task is asked for
    by list before it is called gone (one list request for its id), and
    from then on by list only: one request, not two."""
    tid = [t["task_id"] for t in main_tasks if t["status"] == "PENDING"][0]
    name = mfs.escape_name(tid)
    m = mounter(server, page_size=100, ttl=600, extra_opts=["wait_max=2"])
    assert name in os.listdir(m.p("by-status", "PENDING"))
    server.faults(expired_ids=[tid])

    def asked():
        log = server.log()
        by_list = [e for e in mfs.list_entries(log)
                   if tid in mfs.in_filter_ids(mfs.body_of(e)) or
                   any(c.get("field") == "task_id" and
                       c.get("value") == tid
                       for c in conditions(mfs.body_of(e)))]
        return len(mfs.get_entries(log)), len(by_list), len(log)

    for round in range(3):
        server.reset()
        # a refresh by hand of the task: it is asked for again
        assert mfs.read(m, "tasks", name, ".refresh") is not None
        assert mfs.read(m, "tasks", name, "status") == b"PENDING\n"
        gets, lists, total = asked()
        if round == 0:
            assert (gets, lists, total) == (1, 1, 2)
        else:
            assert (gets, lists, total) == (0, 1, 1)
    # .wait does not end at once with ENOENT: it waits (wait_max=2)
    r = mfs.sh("cat tasks/%s/.wait" % name, m.path, check=False, timeout=60)
    assert r.returncode != 0 and "timed out" in r.err, r.err


# ---------------------------------------------------------------------------
# 6. how many, for one request

def count_of(m, *parts):
    return int(os.getxattr(m.p(*parts), "user.mixpeek.count").decode())


def test_count_xattr_one_request(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    thumbs = [t for t in failed if t["task_type"] == "thumbnail"]
    server.reset()
    assert "user.mixpeek.count" in os.listxattr(m.p("by-status", "FAILED"))
    assert count_of(m, "by-status", "FAILED") == len(failed)
    log = server.log()
    assert len(log) == 1, log
    q = mfs.query_of(log[0])
    assert q.get("limit") == "1" and q.get("include_total") == "true", q
    # within the ttl: no request
    assert count_of(m, "by-status", "FAILED") == len(failed)
    assert len(server.log()) == 1
    # query folders too; a folder cut at @limit counts at most that
    assert count_of(m, "tasks", "status=FAILED",
                    "task_type=thumbnail") == len(thumbs)
    assert count_of(m, "tasks", "status=FAILED", "@limit=3") == 3
    assert count_of(m, "tasks") == len(main_tasks)
    # a listed folder counts its listing, without a request
    server.reset()
    names = os.listdir(m.p("by-type", "thumbnail"))
    before = len(server.log())
    assert count_of(m, "by-type", "thumbnail") == len(names)
    assert len(server.log()) == before
    # a task folder has none
    tid = mfs.escape_name(failed[0]["task_id"])
    assert mfs.errno_of(os.getxattr, m.p("tasks", tid),
                        "user.mixpeek.count") == errno.ENODATA


def test_limited_listing_asks_no_total(server, mounter):
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    assert len(os.listdir(m.p("tasks", "@limit=20"))) == 20
    for e in mfs.list_entries(server.log()):
        assert mfs.query_of(e).get("include_total") in (None, "false"), e


# ---------------------------------------------------------------------------
# 7. task.json as jq prints it

def test_task_json_as_jq_prints_it(server, mounter, main_tasks):
    import json
    m = mounter(server, page_size=100, ttl=600)
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    r = mfs.sh("grep -l '\"status\": \"FAILED\"' by-status/FAILED/*/task.json"
               " | wc -l", m.path)
    assert int(r.out) == len(failed)
    for t in failed[:20]:
        got = mfs.read(m, "tasks", mfs.escape_name(t["task_id"]),
                       "task.json").decode()
        assert got == json.dumps(t, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------
# 8. -d logs the requests, the probe's too, and no FUSE operation

def test_debug_logs_requests_only(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600, extra_args=["-d"])
    os.listdir(m.p("by-status", "FAILED"))
    err = m.stderr()
    assert "(the probe): status 200" in err, err[:2000]
    assert "POST /v1/tasks/list" in err
    assert "opcode:" not in err and "unique:" not in err, err[:2000]


def test_empty_namespace_refused(server, mountpoint):
    r = mfs.run_mixpeekfs(["-o", "url=%s,namespace=" % server.url,
                           mountpoint])
    assert r.returncode != 0
    assert b"namespace must not be empty" in r.stderr
    assert not os.path.ismount(mountpoint)


def test_unmount_while_waiting_as_documented(server, mounter, main_tasks):
    """The man page: fusermount3 -u is refused (busy) while a reader
    waits in .wait, and the reader waits on; Ctrl-C ends it, then -u
    works."""
    import signal
    import subprocess
    tid = [t["task_id"] for t in main_tasks if t["status"] == "PENDING"][0]
    m = mounter(server, page_size=100, ttl=600)
    reader = subprocess.Popen(["cat", m.p("tasks", mfs.escape_name(tid),
                                          ".wait")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mfs.wait_until(lambda: "waits 1" in mfs.read(
        m, ".mixpeekfs", "stats").decode(), 30, "the wait to start")
    r = subprocess.run(["fusermount3", "-u", m.path], capture_output=True)
    assert r.returncode != 0 and b"busy" in r.stderr, r
    assert reader.poll() is None
    reader.send_signal(signal.SIGINT)
    reader.communicate(timeout=30)
    assert reader.returncode != 0


def test_mistyped_status_says_so(server, mounter):
    """A status folder no task has is ENOENT, and one log line (once a
    ttl) names the statuses there are."""
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    for _ in range(3):
        assert mfs.errno_of(os.listdir, m.p("by-status", "FAILD")) == \
            errno.ENOENT
    err = m.stderr()
    assert err.count("no task has status 'FAILD'") == 1, err
    assert "FAILED" in err.split("no task has status 'FAILD'", 1)[1]
    assert server.log() == []


def test_background_says_where_messages_go(server, mountpoint, tmp_path):
    """In the background, the terminal is told where messages will go:
    syslog where there is one (/dev/log), else a file, which then gets
    them."""
    import stat
    import subprocess
    state = tmp_path / "state"
    state.mkdir()
    r = mfs.run_mixpeekfs(["-o", "url=%s,ttl=600" % server.url, mountpoint],
                          timeout=60,
                          env_extra={"XDG_STATE_HOME": str(state)})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    try:
        has_syslog = os.path.exists("/dev/log") and \
            stat.S_ISSOCK(os.stat("/dev/log").st_mode)
        if has_syslog:
            assert "messages go to syslog" in err, err
        else:
            logfile = str(state / "mixpeekfs.log")
            assert "messages go to " + logfile in err, err
            assert oct(os.stat(logfile).st_mode & 0o777) == "0o600"
            # a message after detaching lands in the file
            assert mfs.errno_of(os.listdir, os.path.join(
                mountpoint, "by-status", "NOPE")) == errno.ENOENT
            mfs.wait_until(lambda: "no task has status 'NOPE'" in
                           open(logfile).read(), 30, "the log line")
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint],
                       capture_output=True, timeout=30)


# ---------------------------------------------------------------------------
# 8. no false warning on a listing of 11,001 to 22,000 tasks

@pytest.mark.timeout(300)
def test_two_ended_listing_repeats_nothing(fuse_ok, workdir, mounter):
    srv = mfs.Server(os.path.join(workdir, "srv-11500"), count=11500,
                     seed=23)
    try:
        ids = [t["task_id"] for t in srv.dataset()]
        m = mounter(srv, page_size=None, ttl=600)
        srv.reset()
        listed = os.listdir(m.p("tasks"))
        assert sorted(listed) == sorted(mfs.escape_name(i) for i in ids)
        assert "repeated" not in m.stderr(), m.stderr()
        # ceil(N/page_size)+1 at most
        assert srv.requests()["list"] <= 11500 // 1000 + 2
    finally:
        srv.stop()


# ---------------------------------------------------------------------------
# 1. the README's tour and the quick start's hints, on the published shape

@pytest.fixture(scope="module")
def sample(fuse_ok, workdir):
    """The quick start's sample server: 5,000 tasks of seed 1, in the
    server's default (published) shape."""
    srv = mfs.Server(os.path.join(workdir, "srv-sample"), count=5000, seed=1)
    yield srv
    srv.stop()


def shell_line(cmd):
    """A command as a test can run it: watch's command, once."""
    import shlex
    words = shlex.split(cmd)
    if words and words[0] == "watch":
        words = [w for w in words[1:] if not w.startswith("-")]
        return words[0] if len(words) == 1 else " ".join(
            shlex.quote(w) for w in words)
    return cmd


def test_published_shape(sample):
    for t in sample.dataset()[:50]:
        assert list(t) == ["task_id", "task_type", "status", "inputs",
                           "outputs", "additional_data", "error"], t


def test_readme_tour_on_published_data(sample, mounter):
    with open(os.path.join(mfs.source_tree(), "README.md")) as f:
        text = f.read()
    block = text.split("## A tour", 1)[1].split("```sh", 1)[1]
    block = block.split("```", 1)[0]
    tasks = sample.dataset()
    task = next(t for t in tasks if t["status"] == "FAILED" and
                (t["additional_data"] or {}).get("bucket_id"))
    m = mounter(sample, page_size=None, ttl=60)
    ran = 0
    for line in block.splitlines():
        cmd = line.split("  #", 1)[0].strip()
        if not cmd:
            continue
        cmd = shell_line(cmd.replace("<task_id>",
                                     mfs.escape_name(task["task_id"])))
        r = mfs.sh(cmd, m.path, check=False, timeout=120)
        assert r.returncode == 0 and not r.err.strip(), (cmd, r.err)
        assert r.out.strip() or cmd.startswith("status="), (cmd, r.err)
        ran += 1
    assert ran >= 15


def test_quickstart_hints_on_published_data(sample, mounter):
    with open(os.path.join(mfs.source_tree(), "contrib", "quickstart")) as f:
        text = f.read()
    hints = text.split("Try:", 1)[1].split("Stop:", 1)[0]
    m = mounter(sample, page_size=None, ttl=60)
    ran = 0
    for line in hints.splitlines():
        cmd = line.strip()
        if not cmd:
            continue
        cmd = cmd.replace("$mnt", m.path).replace("\\$", "$")
        r = subprocess_sh(cmd)
        assert r.returncode == 0 and not r.err.strip(), (cmd, r.err)
        assert r.out.strip(), (cmd, r.err)
        ran += 1
    assert ran >= 5


def subprocess_sh(cmd):
    """cmd in the source tree (man -l man/mixpeekfs.1), pager off."""
    import subprocess
    r = subprocess.run(["bash", "-c", cmd],
                       cwd=mfs.source_tree(), capture_output=True,
                       timeout=120, env=dict(os.environ, MANPAGER="cat",
                                             PAGER="cat", LC_ALL="C.UTF-8"))
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


# ---------------------------------------------------------------------------
# 5. every task that stays is listed, once

def test_listing_while_tasks_leave(server, mounter, main_tasks):
    """100 tasks leave by-status/COMPLETED right after its first page is
    answered (the server moves them then, deterministically): the later
    offset pages shift by 100. The daemon sees the total change, lists
    again, and shows every task that stayed, once."""
    completed = [t["task_id"] for t in main_tasks
                 if t["status"] == "COMPLETED"]
    assert len(completed) > 250
    m = mounter(server, page_size=100, ttl=600)
    server.faults(move_after_first_page={
        "status": "COMPLETED", "to": "FAILED", "count": 100})
    server.reset()
    listed = os.listdir(m.p("by-status", "COMPLETED"))
    assert len(listed) == len(set(listed)), "a task shown twice"
    assert sorted(listed) == sorted(mfs.escape_name(i)
                                    for i in completed[100:])
    # listed again once, not more
    assert server.requests()["list"] <= 2 * mfs.pages(len(completed), 100)


@pytest.mark.parametrize("args,says", [
    (["-o", "url=127.0.0.1:9"], "mixpeekfs: url must start with https://"),
    (["-o", "url=http://127.0.0.1:9", "/nonexistent-mnt"],
     "mixpeekfs: mountpoint /nonexistent-mnt: No such file or directory"),
])
def test_start_errors_worded_alike(server, mountpoint, args, says):
    if "/nonexistent-mnt" not in args:
        args = args + [mountpoint]
    r = mfs.run_mixpeekfs(args)
    err = r.stderr.decode()
    assert r.returncode != 0 and err.startswith(says), err
    assert err.count("\n") == 1, err


def test_reader_between_readdirs_sees_no_name_twice(server, mounter,
                                                    main_tasks):
    """A reader halfway through by-status/COMPLETED while its listing is
    replaced (by a refresh after 100 of its tasks moved to FAILED) goes on
    in the listing it started: every name once, none lost."""
    done = [t["task_id"] for t in main_tasks if t["status"] == "COMPLETED"]
    m = mounter(server, page_size=100, ttl=600)
    folder = m.p("by-status", "COMPLETED")
    it = os.scandir(folder)
    first = [next(it).name for _ in range(10)]
    for tid in done[:100]:
        server.update_task(tid, {"status": "FAILED"})
    mfs.read(m, "by-status", "COMPLETED", ".refresh")
    assert len(os.listdir(folder)) == len(done) - 100  # replaced
    rest = [e.name for e in it]
    it.close()
    names = first + rest
    assert len(names) == len(set(names)), "a name seen twice"
    assert sorted(names) == sorted(mfs.escape_name(i) for i in done)


def test_get_carries_no_content_type(server, mounter, main_tasks):
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    tid = mfs.escape_name(main_tasks[7]["task_id"])
    assert mfs.read(m, "tasks", tid, "status")
    os.listdir(m.p("by-status", "FAILED"))
    log = server.log()
    gets = mfs.get_entries(log)
    assert gets and all(e["content_type"] is None for e in gets), gets
    assert all(e["content_type"] == "application/json"
               for e in mfs.list_entries(log))
