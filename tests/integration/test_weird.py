"""Hostile ids and keys (--weird): escaping, and nothing leaves the folder."""

import errno
import os
import stat

import pytest

import mfs

WEIRD_IDS = ("task/evil", "..", "task_" + "x" * 295)


@pytest.fixture
def weird(weird_server):
    weird_server.reset()
    return weird_server


@pytest.fixture
def weird_tasks(weird):
    tasks = weird.dataset()
    ids = [t["task_id"] for t in tasks]
    for i in WEIRD_IDS + ("task_weird_keys",):
        assert i in ids, "the --weird server lacks task %r" % i
    return tasks


def test_escape_rule_examples():
    """The helper implements the documented rule (self-check)."""
    assert mfs.escape_name("a/b") == "a%2Fb"
    assert mfs.escape_name("a%2Fb") == "a%252Fb"
    assert mfs.escape_name(".") == "%2E"
    assert mfs.escape_name("..") == "%2E%2E"
    assert mfs.escape_name("...") == "..."
    assert mfs.escape_name("") == "%00"
    assert mfs.fnv1a64(b"") == 0xcbf29ce484222325
    assert mfs.fnv1a64(b"a") == 0xaf63dc4c8601ec8c
    assert mfs.fnv1a64(b"foobar") == 0x85944171f73967e8
    long = mfs.escape_name("k" * 300)
    assert long == "k" * 200 + "%~" + "%016x" % mfs.fnv1a64(b"k" * 300)
    # Never cut inside an escape or a UTF-8 sequence.
    s = mfs.escape_name("k" * 199 + "/" + "z" * 300)
    assert s.startswith("k" * 199 + "%~")
    s = mfs.escape_name("k" * 199 + "é" * 100)
    assert s.startswith("k" * 199 + "%~")
    assert len(s.encode()) == 199 + 2 + 16


def test_weird_ids_escaped_in_tasks(weird, weird_tasks, mounter):
    m = mounter(weird, page_size=50, ttl=600)
    expected = [mfs.escape_name(t["task_id"]) for t in weird_tasks]
    assert "task%2Fevil" in expected and "%2E%2E" in expected
    got = os.listdir(m.p("tasks"))
    assert got == expected
    # ls -f shows everything readdir returns, including . and ..
    r = mfs.sh("ls -f tasks", m.path)
    entries = r.out.split("\n")[:-1]
    assert entries.count("..") <= 1 and entries.count(".") <= 1, \
        [e for e in entries if e in (".", "..")]
    others = [e for e in entries if e not in (".", "..")]
    assert sorted(others) == sorted(expected)
    for name in got:
        assert "/" not in name and len(name.encode()) <= 255, name


def test_weird_ids_in_status_folders(weird, weird_tasks, mounter):
    m = mounter(weird, page_size=50, ttl=600)
    for status in ("PENDING", "IN_PROGRESS", "CANCELED"):
        expected = [mfs.escape_name(t["task_id"]) for t in weird_tasks
                    if t["status"] == status]
        assert os.listdir(m.p("by-status", status)) == expected
    assert "%2E%2E" in os.listdir(m.p("by-status", "PENDING"))


def test_long_id_name(weird, weird_tasks, mounter):
    m = mounter(weird, page_size=50, ttl=600)
    long_id = WEIRD_IDS[2]
    name = "task_" + "x" * 195 + "%~" + "%016x" % mfs.fnv1a64(
        long_id.encode())
    assert mfs.escape_name(long_id) == name
    assert name in os.listdir(m.p("tasks"))
    with open(m.p("tasks", name, "task_id"), "rb") as f:
        assert f.read() == long_id.encode() + b"\n"


def test_weird_keys_folder(weird, weird_tasks, mounter):
    m = mounter(weird, page_size=50, ttl=600)
    t = next(t for t in weird_tasks if t["task_id"] == "task_weird_keys")
    os.listdir(m.p("tasks"))
    ad = m.p("tasks", "task_weird_keys", "additional_data")
    long_name = "k" * 200 + "%~" + "%016x" % mfs.fnv1a64(b"k" * 300)
    names = ["%00", "%2E", "%2E%2E", "a%2Fb", long_name, "a%252Fb",
             "bucket_id"]
    assert sorted(mfs.expected_node(t["additional_data"])) == sorted(names)
    assert sorted(os.listdir(ad)) == sorted(names)
    contents = {"%00": "empty key", "%2E": "dot", "%2E%2E": "dot dot",
                "a%2Fb": "slash", long_name: "300-byte key",
                "a%252Fb": "percent-encoded slash", "bucket_id": "bkt_media"}
    for name, text in contents.items():
        p = os.path.join(ad, name)
        st = os.lstat(p)
        assert stat.S_ISREG(st.st_mode), name
        with open(p, "rb") as f:
            data = f.read()
        assert data == text.encode() + b"\n", name
        assert st.st_size == len(data)
    # The real .. of additional_data is the task folder, not a key.
    assert os.stat(os.path.join(ad, "..")).st_ino == \
        os.stat(m.p("tasks", "task_weird_keys")).st_ino
    r = mfs.sh("cat tasks/task_weird_keys/additional_data/%2E%2E", m.path)
    assert r.out == "dot dot\n"
    r = mfs.sh("jq -r '.additional_data[\"..\"]' "
               "tasks/task_weird_keys/task.json", m.path)
    assert r.out == "dot dot\n"


def test_all_weird_server_task_folders(weird, weird_tasks, mounter):
    """Full content of every task on the --weird server."""
    import json
    m = mounter(weird, page_size=50, ttl=600)
    os.listdir(m.p("tasks"))
    diffs = []
    for t in weird_tasks:
        folder = m.p("tasks", mfs.escape_name(t["task_id"]))
        tree, problems = mfs.read_tree(folder)
        diffs.extend(problems)
        tj = tree.pop("task.json", None)
        if not isinstance(tj, bytes) or json.loads(tj.decode()) != t:
            diffs.append("%s/task.json wrong" % folder)
        diffs.extend(mfs.compare_tree(mfs.expected_task_tree(t), tree,
                                      folder))
        if len(diffs) > 40:
            break
    assert not diffs, "\n".join(diffs[:40])


def test_nothing_escapes_task_folder(weird, weird_tasks, mounter):
    m = mounter(weird, page_size=50, ttl=600)
    os.listdir(m.p("tasks"))
    tasks_ino = os.stat(m.p("tasks")).st_ino
    for i in WEIRD_IDS:
        d = m.p("tasks", mfs.escape_name(i))
        assert os.path.isdir(d), d
        assert os.stat(os.path.join(d, "..")).st_ino == tasks_ino
        assert os.stat(os.path.join(d, "..")).st_ino != os.stat(d).st_ino
    # find stays inside and sees exactly the expected number of entries.
    r = mfs.sh("find tasks", m.path, timeout=120)
    paths = mfs.lines(r.out)
    assert all(p == "tasks" or p.startswith("tasks/") for p in paths)
    for p in paths:
        parts = p.split("/")
        assert ".." not in parts and "." not in parts, p
    n_expected = 1  # tasks itself

    def count(node):
        n = 0
        for sub in node.values():
            n += 1
            if isinstance(sub, dict):
                n += count(sub)
        return n

    for t in weird_tasks:
        n_expected += 1 + 1 + count(mfs.expected_task_tree(t))  # dir+json
    assert len(paths) == n_expected
    # The %2E%2E task is a task folder holding that task.
    r = mfs.sh("cat tasks/%2E%2E/task_id tasks/task%2Fevil/task_id", m.path)
    assert r.out == "..\ntask/evil\n"
    # by-status/PENDING/%2E%2E/.. is by-status/PENDING.
    assert os.stat(m.p("by-status", "PENDING", "%2E%2E", "..")).st_ino == \
        os.stat(m.p("by-status", "PENDING")).st_ino


@pytest.mark.parametrize("raw", ["100%", "task_%2Fx", "caf\u00e9"])
def test_weird_id_lookup_without_listing(server, mounter, raw):
    """An escaped (not truncated) id maps back to the raw id: one GET of
    /v1/tasks/<percent-encoded raw id>, no listing."""
    from urllib.parse import unquote
    server.put_tasks([{"task_id": raw, "task_type": "thumbnail",
                       "status": "SKIPPED", "inputs": [], "outputs": [],
                       "additional_data": {}, "error": None}])
    m = mounter(server, page_size=50, ttl=600)
    server.reset()
    name = mfs.escape_name(raw)
    r = mfs.sh("cat tasks/%s/status" % name, m.path, check=False)
    gets = mfs.get_entries(server.log())
    paths = [mfs.path_of(e) for e in gets]
    assert len(gets) == 1, paths
    assert paths[0].startswith("/v1/tasks/") and \
        unquote(paths[0][len("/v1/tasks/"):]) == raw, paths
    assert r.returncode == 0 and r.out == "SKIPPED\n", r.err
    assert mfs.list_entries(server.log()) == []


@pytest.mark.parametrize("name", ["task%2Fevil", "%2E%2E", "%2E", "%00",
                                  "%2F", "a%2Fb", "%2E%2E%2F%2E%2E"])
def test_id_not_one_segment_never_asked(weird, mounter, name):
    """A name whose id is not one path segment (".", "..", "", or one with
    a "/") is ENOENT and sends nothing: no escaping survives every curl
    version (8.14 resolves %2E%2E, GET /v1/). Listed, such a task is
    shown from its listing (test_nothing_escapes_task_folder)."""
    m = mounter(weird, page_size=50, ttl=600)
    weird.reset()
    assert mfs.errno_of(os.stat, m.p("tasks", name)) == errno.ENOENT
    r = mfs.sh("cat tasks/%s/status" % name, m.path, check=False)
    assert r.returncode != 0
    assert weird.log() == []


def test_dot_ids_listed_and_looked_up(server, mounter, main_tasks):
    """Ids ".", "%", "a%2Fb" added to the main server (restored after)."""
    from urllib.parse import unquote
    import json
    added = {".": "%2E", "100%": "100%25", "a%2Fb": "a%252Fb"}
    for raw in added:
        task = {"task_id": raw, "task_type": "thumbnail",
                "status": "SKIPPED", "description": "odd id " + raw,
                "inputs": None, "outputs": [], "additional_data": {},
                "error": None}
        status, data = mfs.http("PUT", server.url + "/_test/tasks", task)
        assert status in (200, 201), (status, data)
    for raw, name in added.items():
        assert mfs.escape_name(raw) == name
    # Lookups without listing: one GET each, of the raw id; none for ".",
    # which no request path can name (ENOENT)
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    bad = []
    for raw, name in added.items():
        server.reset()
        r = mfs.sh("cat tasks/%s/description" % name, m.path, check=False)
        sent = [mfs.path_of(e) for e in server.log()]
        if raw == ".":
            if r.returncode == 0 or sent:
                bad.append("id '.': cat -> %r; requests sent: %r"
                           % (r.out, sent))
        elif r.returncode != 0 or r.out != "odd id %s\n" % raw or \
                len(sent) != 1 or unquote(sent[0]) != "/v1/tasks/" + raw:
            bad.append("id %r: cat -> %r %r; requests sent: %r"
                       % (raw, r.out, r.err.strip(), sent))
    assert not bad, "\n".join(bad)
    server.reset()
    for raw, name in added.items():
        if raw == ".":
            assert mfs.errno_of(os.stat, m.p("tasks", name)) == errno.ENOENT
        else:
            os.stat(m.p("tasks", name))
    paths = [mfs.path_of(e) for e in mfs.get_entries(server.log())]
    assert paths == [], "lookups were not cached: %r" % paths
    # Listed: escaped names, in the server's order; empty additional_data
    # is an empty folder.
    m2 = mounter(server, page_size=100, ttl=600)
    listed = os.listdir(m2.p("by-status", "SKIPPED"))
    expected = [mfs.escape_name(t["task_id"]) for t in server.dataset()
                if t["status"] == "SKIPPED"]
    assert listed == expected
    for raw, name in added.items():
        d = m2.p("by-status", "SKIPPED", name)
        assert os.listdir(os.path.join(d, "additional_data")) == []
        with open(os.path.join(d, "task.json")) as f:
            assert json.load(f)["task_id"] == raw
