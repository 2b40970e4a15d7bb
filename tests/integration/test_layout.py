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


# One source for each fact (issue 12): mixpeekfs(1) is the reference; the
# mount's README is made from it at build time (man/readme.py); README.md
# points to it and holds no copy of its tables.

def man_text():
    with open(os.path.join(mfs.source_tree(), "man", "mixpeekfs.1")) as f:
        return f.read()


def readme_py():
    """man/readme.py of the tree the binary was built from, as a module."""
    import importlib.util
    path = os.path.join(mfs.source_tree(), "man", "readme.py")
    spec = importlib.util.spec_from_file_location("readme_py", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def query_grammar():
    """The operators and directives the parser knows (src/query.c)."""
    import re
    with open(os.path.join(mfs.source_tree(), "src", "query.c")) as f:
        src = f.read()
    table = re.search(r"ops\[\] = \{(.*?)\};", src, re.S).group(1)
    ops = set(re.findall(r'"(\w+)"', table))
    assert {"eq", "regex", "is_null", "starts_with"} <= ops, ops
    directives = set(re.findall(r'"(@\w+)=', src))
    assert {"@limit", "@sort", "@search"} <= directives, directives
    return ops, directives


def test_mount_readme_is_made_from_the_man_page(mnt):
    """The README a mount serves is, byte for byte, readme.py's rendering
    of the man page's sections LAYOUT to ERRORS: no hand-kept copy."""
    mounted = mfs.read(mnt, "README").decode("ascii")
    gen = readme_py()
    man = man_text()
    assert mounted == gen.readme(man)
    # every section from LAYOUT to ERRORS, in the man page's order
    names = list(gen.sections(man))
    wanted = names[names.index("LAYOUT"):names.index("ERRORS") + 1]
    assert {"LAYOUT", "QUERY FOLDERS", "HIDDEN FILES", "ERRORS"} <= \
        set(wanted), wanted
    heads = [l for l in mounted.splitlines() if l and l == l.upper()
             and l[0] != " " and l[0].isalpha()]
    assert heads == wanted
    # and src/vfile.c holds no text of its own
    with open(os.path.join(mfs.source_tree(), "src", "vfile.c")) as f:
        vfile = f.read()
    assert "VFILE_README_TEXT" in vfile
    for phrase in ("by-status/", "starts_with", "EACCES", "%2F"):
        assert phrase not in vfile, phrase


def man_sections_by_groff(man):
    """{name: text} of the man page as groff renders it (plain ASCII)."""
    import re
    import shutil
    import subprocess
    import pytest
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (Debian: groff-base)")
    r = subprocess.run(["groff", "-ww", "-man", "-Tascii", "-P-cbou",
                        "-rLL=100n"], input=man, capture_output=True,
                       text=True, check=True)
    assert r.stderr == "", r.stderr
    out = {}
    name = None
    for line in r.stdout.splitlines():
        if re.match(r"[A-Z][A-Z ]+$", line):
            name = line
            out[name] = []
        elif name and line.startswith(" "):
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def test_readme_py_keeps_every_word_groff_shows():
    """readme.py renders a small subset of man(7); what it renders must
    be what man shows: each section's characters, but for spaces,
    hyphens (groff breaks words at them) and bullets, equal groff's."""
    import re
    gen = readme_py()
    man = man_text()
    by_groff = man_sections_by_groff(man)
    mine = gen.readme(man)
    sections = re.split(r"^([A-Z][A-Z ]+)$", mine, flags=re.M)
    assert len(sections) > 10, sections[:3]

    def squeeze(text):
        return re.sub(r"[\s\-]+", "", text)
    for name, text in zip(sections[1::2], sections[2::2]):
        assert name in by_groff, name
        # groff's -Tascii bullet is an "o" at the start of an item
        theirs = re.sub(r"(?m)^(\s*)o ", r"\1", by_groff[name])
        assert squeeze(text) == squeeze(theirs), name
    # the title is the page's NAME line
    assert squeeze(mine.splitlines()[0]) == squeeze(by_groff["NAME"])


def test_every_option_is_in_the_man_page_and_help():
    """Each option of src/opts.c's tables has an item in the man page's
    OPTIONS and a line in --help; the man page documents no other."""
    import re
    import subprocess
    with open(os.path.join(mfs.source_tree(), "src", "opts.c")) as f:
        src = f.read()
    table = re.search(r"opt_table\[\] = \{(.*?)\};", src, re.S).group(1)
    flags = set(re.findall(r'OPT\("(\w+)', table))
    nums = set(re.findall(r'\{ "(\w+)", offsetof', src))
    assert {"url", "key_file", "debug"} <= flags, flags
    assert {"ttl", "cache_size"} <= nums, nums
    options = flags | nums
    gen = readme_py()
    opts = "\n".join(gen.sections(man_text())["OPTIONS"])
    in_man = set(re.findall(r'^\.B\w* "?\\-o (\w+)', opts, re.M))
    assert in_man == options, (sorted(in_man - options),
                               sorted(options - in_man))
    r = subprocess.run([mfs.mixpeekfs_bin(), "--help"],
                       capture_output=True, text=True, timeout=30)
    in_help = set(re.findall(r"^ +-o (\w+)", r.stdout, re.M))
    assert options <= in_help, sorted(options - in_help)


def test_grammar_of_the_parser_is_the_man_pages(mnt):
    """Every operator and directive the parser knows (src/query.c's
    table) is in the man page's QUERY FOLDERS, and so in the mount's
    README, which is made from it."""
    import re
    ops, directives = query_grammar()
    gen = readme_py()
    man = gen.sections(man_text())["QUERY FOLDERS"]
    text = gen.unescape(" ".join(l for l in man if not l.startswith(".\\\"")),
                        "QUERY FOLDERS")
    mounted = mfs.read(mnt, "README").decode()
    for name, t in (("man page", text), ("the mount's README", mounted)):
        at = t.find("starts_with")
        assert at >= 0, "%s has no operator list" % name
        near = t[max(0, at - 600):at + 600]
        missing = sorted(o for o in ops
                         if not re.search(r"\b%s\b" % o, near))
        assert not missing, "%s lacks operators %s" % (name, missing)
        missing = sorted(d for d in directives if d not in t)
        assert not missing, "%s lacks %s" % (name, missing)


def test_readme_md_points_to_the_man_page_and_copies_none_of_it():
    """README.md holds the quick start, a tour and pointers: not the
    operator list, nor a table of options or errnos, nor the layout's
    mapping table, which are the man page's."""
    import re
    ops, _ = query_grammar()
    with open(os.path.join(mfs.source_tree(), "README.md")) as f:
        readme = f.read()
    rare = ops - {"eq", "ne", "gt", "gte", "lt", "lte", "in", "text"}
    for line in readme.splitlines():
        named = [o for o in rare if re.search(r"\b%s\b" % o, line)]
        assert len(named) < 3, "README.md lists operators: " + line
        assert not re.match(r"\|\s*`-o ", line), \
            "README.md has an options table: " + line
        assert not re.match(r"\|\s*`E[A-Z]+`", line), \
            "README.md has an errno table: " + line
        assert not re.match(r"\|\s*(object|null|string)\b", line), \
            "README.md maps JSON values: " + line
    assert "man mixpeekfs" in readme
    assert "man man/mixpeekfs.1" in readme
    # the quick start opens with the two commands for a fresh machine
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    cmds = [l.split("#")[0].strip() for l in block.splitlines()]
    assert cmds == ["bash contrib/quickstart", "bash tests/run"], cmds
