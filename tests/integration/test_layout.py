"""Layout and listings: root, by-status/, by-type/, tasks/, shell tools."""

import json
import os
import stat

import mfs
from mfs import ids_where

dataset = None


def setup_module(module):
    global dataset
    if os.path.exists(mfs.SERVER_SCRIPT):
        dataset = mfs.import_dataset()


def names(ids):
    return [mfs.escape_name(i) for i in ids]


def test_server_dataset_matches_generator(main_server, main_tasks):
    """The expectations source: /_test/dataset == dataset.generate()."""
    generated = dataset.generate(main_server.count, main_server.seed)
    assert len(main_tasks) == main_server.count
    assert sorted(t["task_id"] for t in generated) == \
        sorted(t["task_id"] for t in main_tasks)
    by_id = {t["task_id"]: t for t in generated}
    for t in main_tasks:
        assert by_id[t["task_id"]] == t
    assert len(dataset.STATUSES) == 13
    assert len(dataset.TASK_TYPES) == 30


def test_root_entries(mnt):
    r = mfs.sh("ls", mnt.path)
    assert mfs.lines(r.out) == ["README", "by-status", "by-type", "tasks"]
    # .mixpeekfs/ is there, hidden from ls by its dot
    assert sorted(os.listdir(mnt.path)) == \
        [".mixpeekfs", "README", "by-status", "by-type", "tasks"]
    st = os.stat(mnt.p("README"))
    assert stat.S_ISREG(st.st_mode)
    with open(mnt.p("README"), "rb") as f:
        text = f.read()
    assert len(text) > 20
    assert st.st_size == len(text)
    assert text.endswith(b"\n")
    for d in ("by-status", "by-type", "tasks"):
        assert stat.S_ISDIR(os.stat(mnt.p(d)).st_mode)


def test_by_status_has_all_13_without_requests(server, mnt):
    before = server.requests()
    r = mfs.sh("ls by-status", mnt.path)
    got = mfs.lines(r.out)
    assert sorted(got) == sorted(dataset.STATUSES)
    assert len(got) == 13
    mfs.sh("ls -l by-status", mnt.path)
    for s in dataset.STATUSES:
        assert stat.S_ISDIR(os.stat(mnt.p("by-status", s)).st_mode)
    assert mfs.request_delta(before, server.requests())["total"] == 0


def test_by_type_has_all_30_without_requests(server, mnt):
    before = server.requests()
    r = mfs.sh("ls by-type", mnt.path)
    got = mfs.lines(r.out)
    assert sorted(got) == sorted(dataset.TASK_TYPES)
    assert len(got) == 30
    mfs.sh("ls -l by-type", mnt.path)
    for t in dataset.TASK_TYPES:
        assert stat.S_ISDIR(os.stat(mnt.p("by-type", t)).st_mode)
    assert mfs.request_delta(before, server.requests())["total"] == 0


def test_ls_failed_matches_dataset(server, mnt, main_tasks):
    expected = names(ids_where(main_tasks, status="FAILED"))
    assert len(expected) > 10
    r = mfs.sh("ls by-status/FAILED", mnt.path)
    assert mfs.lines(r.out) == sorted(expected)
    # API order: ls -U does not sort.
    r = mfs.sh("ls -U by-status/FAILED", mnt.path)
    assert mfs.lines(r.out) == expected


def test_every_status_folder_in_api_order(server, mnt, main_tasks):
    seen = 0
    for s in dataset.STATUSES:
        expected = names(ids_where(main_tasks, status=s))
        got = os.listdir(mnt.p("by-status", s))
        assert got == expected, "by-status/%s" % s
        seen += len(got)
    # Tasks with statuses outside the 13 are not in by-status.
    assert seen == sum(1 for t in main_tasks
                       if t["status"] in dataset.STATUSES)


def test_every_type_folder_in_api_order(server, mnt, main_tasks):
    seen = 0
    for tt in dataset.TASK_TYPES:
        expected = names(ids_where(main_tasks, task_type=tt))
        r = mfs.sh("ls -U by-type/" + tt, mnt.path)
        assert mfs.lines(r.out) == expected, "by-type/%s" % tt
        seen += len(expected)
    assert seen == sum(1 for t in main_tasks
                       if t["task_type"] in dataset.TASK_TYPES)


def test_ls_tasks_all_in_api_order(server, mnt, main_tasks):
    expected = names(t["task_id"] for t in main_tasks)
    r = mfs.sh("ls -U tasks", mnt.path)
    assert mfs.lines(r.out) == expected
    r = mfs.sh("ls tasks | wc -l", mnt.path)
    assert int(r.out.strip()) == len(main_tasks)


def test_grep_timeout_in_failed_descriptions(server, mnt, main_tasks):
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    expected = sorted("by-status/FAILED/%s/description"
                      % mfs.escape_name(t["task_id"])
                      for t in failed
                      if isinstance(t.get("description"), str)
                      and "timeout" in t["description"])
    # The data must make this test able to fail both ways.
    assert 0 < len(expected) < len(failed)
    r = mfs.sh("grep -l timeout by-status/FAILED/*/description", mnt.path)
    assert sorted(mfs.lines(r.out)) == expected


def test_grep_timeout_finds_nothing_outside_failed(server, mnt, main_tasks):
    completed = ids_where(main_tasks, status="COMPLETED")
    assert completed
    r = mfs.sh("grep -l -e timeout -e OOM by-status/COMPLETED/*/description",
               mnt.path, check=False)
    assert r.returncode == 1, (r.returncode, r.out, r.err)
    assert r.out == ""


def test_jq_reads_task_json(server, mnt, main_tasks):
    sample = main_tasks[::97]
    assert len(sample) >= 5
    for t in sample:
        d = "tasks/" + mfs.escape_name(t["task_id"])
        r = mfs.sh("jq -r .status %s/task.json" % d, mnt.path)
        assert r.out == t["status"] + "\n"
        r = mfs.sh("jq -r .task_type %s/task.json" % d, mnt.path)
        assert r.out == t["task_type"] + "\n"
        r = mfs.sh("jq -c . %s/task.json" % d, mnt.path)
        assert json.loads(r.out) == t


def test_cat_status_of_all_failed(server, mnt, main_tasks):
    failed = ids_where(main_tasks, status="FAILED")
    r = mfs.sh("cat by-status/FAILED/*/status | sort | uniq -c", mnt.path)
    assert r.out.split() == [str(len(failed)), "FAILED"]
    r = mfs.sh("cat by-type/thumbnail/*/task_type | sort -u", mnt.path)
    assert r.out == "thumbnail\n"


def test_find_lists_task_files(server, mnt, main_tasks):
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    r = mfs.sh("find by-status/FAILED -maxdepth 2 -name status -type f",
               mnt.path)
    assert sorted(mfs.lines(r.out)) == sorted(
        "by-status/FAILED/%s/status" % mfs.escape_name(t["task_id"])
        for t in failed)
    r = mfs.sh("find by-status/FAILED -mindepth 1 -maxdepth 1 -type d",
               mnt.path)
    assert len(mfs.lines(r.out)) == len(failed)


def test_grammar_is_the_same_in_every_text(mnt):
    """One source for each fact: every operator and directive the parser
    knows (src/query.c's table) is in the man page (the reference), the
    README and the mount's own README, and none of them names another."""
    import re
    with open(os.path.join(mfs.REPO, "src", "query.c")) as f:
        src = f.read()
    table = re.search(r"ops\[\] = \{(.*?)\};", src, re.S).group(1)
    ops = set(re.findall(r'"(\w+)"', table))
    assert {"eq", "regex", "is_null"} <= ops, ops
    directives = set(re.findall(r'"(@\w+)=', src))
    assert "@limit" in directives, directives
    with open(os.path.join(mfs.REPO, "man", "mixpeekfs.1")) as f:
        man = f.read().replace("\\-", "-").replace("\\(at", "@")
    with open(os.path.join(mfs.REPO, "README.md")) as f:
        readme = f.read()
    mounted = mfs.read(mnt, "README").decode()
    for name, text in (("man page", man), ("README.md", readme),
                       ("the mount's README", mounted)):
        # the operator list, not the prose ("in" and "text" are words)
        at = text.find("starts_with")
        assert at >= 0, "%s has no operator list" % name
        near = text[max(0, at - 600):at + 600]
        missing = sorted(o for o in ops
                         if not re.search(r"\b%s\b" % o, near))
        assert not missing, "%s lacks operators %s" % (name, missing)
        missing = sorted(d for d in directives if d not in text)
        assert not missing, "%s lacks %s" % (name, missing)
