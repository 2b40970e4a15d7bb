"""Task folders: generic mapping of the task JSON, sizes, modes, EROFS."""

import errno
import json
import os
import stat

import pytest

import mfs


def _walk_values(v):
    yield v
    if isinstance(v, dict):
        for x in v.values():
            for y in _walk_values(x):
                yield y
    elif isinstance(v, list):
        for x in v:
            for y in _walk_values(x):
                yield y


def _features(task):
    """Which mapping features one task exercises."""
    f = set()
    for k, v in task.items():
        if v is None:
            f.add("top-null")
    for v in _walk_values(task):
        if isinstance(v, dict) and any(isinstance(x, dict)
                                       for x in v.values()):
            f.add("nested-object")
        if isinstance(v, dict) and not v:
            f.add("empty-object")
        if isinstance(v, dict) and any(x is None for x in v.values()):
            f.add("nested-null")
        if isinstance(v, list):
            if not v:
                f.add("empty-array")
            elif any(isinstance(x, (dict, list)) for x in v):
                f.add("array-folder")
                if any(isinstance(x, list) for x in v):
                    f.add("array-of-arrays")
            else:
                f.add("array-file")
                if any(x is None for x in v):
                    f.add("array-null-element")
        if isinstance(v, bool):
            f.add("bool")
        elif isinstance(v, float):
            f.add("float")
        elif isinstance(v, int):
            f.add("int")
        if isinstance(v, str):
            if "\n" in v:
                f.add("multiline")
            if any(ord(c) > 127 for c in v):
                f.add("unicode")
    return f


def expected_task_json_ok(data, task):
    assert data.endswith(b"\n"), "task.json must end with a newline"
    assert b"\n  " in data or b"\n\t" in data, "task.json not pretty-printed"
    assert json.loads(data.decode("utf-8")) == task


def check_task_folder(folder, task):
    tree, problems = mfs.read_tree(folder)
    diffs = list(problems)
    tj = tree.pop("task.json", None)
    if tj is None:
        diffs.append("%s/task.json: missing" % folder)
    elif isinstance(tj, dict):
        diffs.append("%s/task.json: is a folder" % folder)
    else:
        try:
            expected_task_json_ok(tj, task)
        except (AssertionError, ValueError) as e:
            diffs.append("%s/task.json: %s" % (folder, e))
    diffs.extend(mfs.compare_tree(mfs.expected_task_tree(task), tree,
                                  folder))
    return diffs


def test_dataset_covers_the_mapping_rules(main_tasks):
    """The data must exercise every rule the content test checks."""
    seen = set()
    for t in main_tasks:
        seen |= _features(t)
    wanted = {"top-null", "nested-object", "nested-null", "array-folder",
              "array-file", "empty-array", "float", "int", "multiline",
              "unicode"}
    assert wanted <= seen, "dataset lacks %s" % sorted(wanted - seen)


def test_every_task_folder_content(server, mnt, main_tasks):
    """Every file of every task: exact content, exact st_size."""
    os.listdir(mnt.p("tasks"))
    diffs = []
    for t in main_tasks:
        folder = mnt.p("tasks", mfs.escape_name(t["task_id"]))
        diffs.extend(check_task_folder(folder, t))
        if len(diffs) > 40:
            break
    assert not diffs, "\n".join(diffs[:40])


def test_status_and_type_folders_hold_same_content(server, mnt, main_tasks):
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    diffs = []
    for t in failed:
        name = mfs.escape_name(t["task_id"])
        diffs.extend(check_task_folder(mnt.p("by-status", "FAILED", name), t))
        diffs.extend(check_task_folder(
            mnt.p("by-type", t["task_type"], name), t))
    assert not diffs, "\n".join(diffs[:40])


def _pick(main_tasks, feature):
    for t in main_tasks:
        if feature in _features(t):
            return t
    pytest.skip("no task with %s" % feature)


def test_cat_and_stat_match_expected_bytes(server, mnt, main_tasks):
    """Shell view of one rich task: cat output and stat -c %s per file."""
    t = max(main_tasks, key=lambda t: len(_features(t)))
    d = "tasks/" + mfs.escape_name(t["task_id"])
    exp = mfs.expected_task_tree(t)
    files = []

    def collect(node, rel):
        for name, sub in node.items():
            if isinstance(sub, dict):
                collect(sub, rel + "/" + name)
            else:
                files.append((rel + "/" + name, sub))

    collect(exp, d)
    assert len(files) >= 5
    for rel, e in files:
        r = mfs.sh("cat -- '%s'" % rel.replace("'", "'\\''"), mnt.path)
        assert e.matches(r.stdout), (rel, e, r.stdout)
        r = mfs.sh("stat -c %%s -- '%s'" % rel.replace("'", "'\\''"),
                   mnt.path)
        assert int(r.out) == len(e.canonical()) or e.has_float(), rel
    r = mfs.sh("find %s -type f | wc -l" % d, mnt.path)
    assert int(r.out) == len(files) + 1  # plus task.json


def test_scalars_written_as_text(server, mnt, main_tasks):
    t = main_tasks[0]
    d = mnt.p("tasks", mfs.escape_name(t["task_id"]))
    with open(os.path.join(d, "status"), "rb") as f:
        assert f.read() == t["status"].encode() + b"\n"
    with open(os.path.join(d, "task_id"), "rb") as f:
        assert f.read() == t["task_id"].encode() + b"\n"
    with open(os.path.join(d, "task_type"), "rb") as f:
        assert f.read() == t["task_type"].encode() + b"\n"


def test_null_keys_have_no_entry(server, mnt, main_tasks):
    t = _pick(main_tasks, "top-null")
    d = mnt.p("tasks", mfs.escape_name(t["task_id"]))
    entries = set(os.listdir(d))
    for k, v in t.items():
        if v is None:
            assert mfs.escape_name(k) not in entries
            assert mfs.errno_of(os.stat, os.path.join(
                d, mfs.escape_name(k))) == errno.ENOENT
        else:
            assert mfs.escape_name(k) in entries


def test_multiline_unicode_strings(server, mnt, main_tasks):
    """additional_data/notes: multi-line unicode text, byte exact."""
    with_notes = [t for t in main_tasks
                  if isinstance(t.get("additional_data"), dict)
                  and isinstance(t["additional_data"].get("notes"), str)]
    assert with_notes, "the data set has no additional_data.notes"
    for t in with_notes[:20]:
        v = t["additional_data"]["notes"]
        p = mnt.p("tasks", mfs.escape_name(t["task_id"]), "additional_data",
                  "notes")
        with open(p, "rb") as f:
            data = f.read()
        assert data == v.encode("utf-8") + b"\n", p
        assert os.stat(p).st_size == len(data)
        r = mfs.sh("wc -l < '%s'" % p, mnt.path)
        assert int(r.out) == v.count("\n") + 1


def test_floats_shortest_form(server, mnt, main_tasks):
    """threshold values such as 0.75 are written as 0.75."""
    checked = 0
    for t in main_tasks:
        cfg = (t.get("additional_data") or {}).get("config") or {}
        thr = (cfg.get("params") or {}).get("threshold")
        if isinstance(thr, float):
            p = mnt.p("tasks", mfs.escape_name(t["task_id"]),
                      "additional_data", "config", "params", "threshold")
            with open(p, "rb") as f:
                assert f.read() == repr(thr).encode() + b"\n", p
            checked += 1
        if checked >= 10:
            break
    assert checked


def test_arrays_files_and_numbered_folders(server, mnt, main_tasks):
    obj_inputs = [t for t in main_tasks if isinstance(t.get("inputs"), list)
                  and t["inputs"] and isinstance(t["inputs"][0], dict)]
    str_inputs = [t for t in main_tasks if isinstance(t.get("inputs"), list)
                  and t["inputs"] and isinstance(t["inputs"][0], str)]
    empty_outputs = [t for t in main_tasks if t.get("outputs") == []]
    assert obj_inputs and str_inputs and empty_outputs
    t = obj_inputs[0]
    d = mnt.p("tasks", mfs.escape_name(t["task_id"]), "inputs")
    assert os.path.isdir(d)
    assert sorted(os.listdir(d), key=int) == \
        [str(i) for i in range(len(t["inputs"]))]
    with open(os.path.join(d, "0", "object_id"), "rb") as f:
        assert f.read() == t["inputs"][0]["object_id"].encode() + b"\n"
    t = str_inputs[0]
    p = mnt.p("tasks", mfs.escape_name(t["task_id"]), "inputs")
    with open(p, "rb") as f:
        assert f.read() == "".join(x + "\n" for x in t["inputs"]).encode()
    t = empty_outputs[0]
    p = mnt.p("tasks", mfs.escape_name(t["task_id"]), "outputs")
    assert os.path.isfile(p) and os.stat(p).st_size == 0
    with open(p, "rb") as f:
        assert f.read() == b""


def test_modes_and_ownership(server, mnt, main_tasks):
    uid, gid = os.getuid(), os.getgid()
    bad = []

    def check(p):
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            want = 0o555
        elif stat.S_ISREG(st.st_mode):
            want = 0o444
        else:
            bad.append("%s: not a file or folder (%o)" % (p, st.st_mode))
            return
        if stat.S_IMODE(st.st_mode) != want:
            bad.append("%s: mode %o, want %o" % (p, stat.S_IMODE(st.st_mode),
                                                want))
        if (st.st_uid, st.st_gid) != (uid, gid):
            bad.append("%s: owner %d:%d, want %d:%d" % (
                p, st.st_uid, st.st_gid, uid, gid))

    check(mnt.path)
    for name in ("README", "by-status", "by-type", "tasks",
                 "by-status/FAILED", "by-type/thumbnail"):
        check(mnt.p(name))
    for t in main_tasks[:25]:
        d = mnt.p("tasks", mfs.escape_name(t["task_id"]))
        check(d)
        for root, dirs, files in os.walk(d):
            for n in dirs + files:
                check(os.path.join(root, n))
    assert not bad, "\n".join(bad[:30])
    # ls -l agrees.
    t = main_tasks[0]
    r = mfs.sh("ls -ln tasks/%s" % mfs.escape_name(t["task_id"]), mnt.path)
    rows = [l.split() for l in mfs.lines(r.out) if not l.startswith("total")]
    assert rows
    for row in rows:
        assert row[0] in ("-r--r--r--", "dr-xr-xr-x"), row
        assert (row[2], row[3]) == (str(uid), str(gid)), row


def test_ls_l_sizes_exact(server, mnt, main_tasks):
    t = main_tasks[3]
    d = "tasks/" + mfs.escape_name(t["task_id"])
    r = mfs.sh("ls -ln %s" % d, mnt.path)
    exp = mfs.expected_task_tree(t)
    for l in mfs.lines(r.out):
        if l.startswith("total"):
            continue
        parts = l.split(None, 8)
        name, size = parts[8], int(parts[4])
        if parts[0].startswith("-"):
            with open(mnt.p(d, name), "rb") as f:
                assert size == len(f.read()), name
            if name != "task.json" and not exp[name].has_float():
                assert size == len(exp[name].canonical()), name


EROFS = errno.EROFS


def test_writes_are_erofs(server, mnt, main_tasks):
    t = main_tasks[0]
    d = mnt.p("tasks", mfs.escape_name(t["task_id"]))
    os.listdir(mnt.p("tasks"))
    f = os.path.join(d, "status")
    assert mfs.errno_of(open, f, "w") == EROFS
    assert mfs.errno_of(open, f, "a") == EROFS
    assert mfs.errno_of(open, f, "r+") == EROFS
    assert mfs.errno_of(os.open, f, os.O_WRONLY | os.O_TRUNC) == EROFS
    assert mfs.errno_of(os.truncate, f, 0) == EROFS
    # create
    assert mfs.errno_of(open, os.path.join(d, "newfile"), "w") == EROFS
    assert mfs.errno_of(open, mnt.p("newfile"), "x") == EROFS
    assert mfs.errno_of(open, mnt.p("tasks", "newtask"), "w") == EROFS
    # mkdir
    assert mfs.errno_of(os.mkdir, mnt.p("newdir")) == EROFS
    assert mfs.errno_of(os.mkdir, mnt.p("by-status", "NEW")) == EROFS
    assert mfs.errno_of(os.mkdir, os.path.join(d, "x")) == EROFS
    # rm
    assert mfs.errno_of(os.unlink, f) == EROFS
    assert mfs.errno_of(os.unlink, mnt.p("README")) == EROFS
    assert mfs.errno_of(os.rmdir, d) == EROFS
    assert mfs.errno_of(os.rmdir, mnt.p("by-status", "FAILED")) == EROFS
    # rename
    assert mfs.errno_of(os.rename, f, os.path.join(d, "status2")) == EROFS
    assert mfs.errno_of(os.rename, d, mnt.p("tasks", "renamed")) == EROFS
    # shell tools too
    r = mfs.sh("echo x > tasks/%s/status" % mfs.escape_name(t["task_id"]),
               mnt.path, check=False)
    assert r.returncode != 0 and "Read-only file system" in r.err, r.err
    r = mfs.sh("rm -rf tasks/%s" % mfs.escape_name(t["task_id"]),
               mnt.path, check=False)
    assert r.returncode != 0
    # Nothing changed.
    with open(f, "rb") as fh:
        assert fh.read() == t["status"].encode() + b"\n"
    assert mfs.escape_name(t["task_id"]) in os.listdir(mnt.p("tasks"))
    assert server.requests()["delete"] == 0
