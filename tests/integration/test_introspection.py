""".mixpeekfs/: config, stats and version as "key value" lines.

Expected values come from the options we mount with, from meson.build and
pkg-config, and from the test server's own counters (/_test/stats and
/_test/log), never from the filesystem's output.
"""

import datetime
import errno
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

import mfs
from mfs import errname, ids_where, names, read

META = ".mixpeekfs"
META_FILES = ["config", "stats", "version"]

# A distinctive key: any 8 characters of its secret part found somewhere
# are a leak.
CUSTOM_KEY = "sk_live_Mq4ZtW8xRv2NcJ7pLb5Kd9Hs"

STATS_KEYS = [
    "requests", "requests.list", "requests.get", "requests.other",
    "retries", "bytes_received", "cache.listings.hits",
    "cache.listings.misses", "cache.tasks.hits", "cache.tasks.misses",
    "refreshes", "invalidations", "tasks_cached", "task_bytes",
    "task_bytes_max", "listings_cached", "listed_tasks", "nodes",
    "memory_rss", "uptime", "last_error_time", "last_error",
]
NON_NUMERIC = {"last_error_time", "last_error"}
LINE_RE = re.compile(r"^[a-z][a-z0-9_.]* \S(.*\S)?$")


# ---------------------------------------------------------------------------
# helpers

def pairs(data):
    """The (key, value) pairs of a "key value" file, in order."""
    text = data.decode("utf-8")
    assert text.endswith("\n"), repr(text[-80:])
    out = []
    for l in text[:-1].split("\n"):
        assert LINE_RE.match(l), "not a 'key value' line: %r" % l
        key, _, value = l.partition(" ")
        out.append((key, value))
    return out


def kv(m, name):
    got = pairs(read(m, META, name))
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys)), "repeated keys in %s: %r" % (
        name, keys)
    return dict(got)


def stats_of(m):
    return kv(m, "stats")


def num(d, key):
    assert re.fullmatch(r"[0-9]+", d[key]), "%s %r" % (key, d[key])
    return int(d[key])


def meson_version():
    with open(os.path.join(mfs.REPO, "meson.build")) as f:
        text = f.read()
    mo = re.search(r"project\(\s*'mixpeekfs'.*?version\s*:\s*'([^']+)'",
                   text, re.S)
    assert mo, "no version in meson.build's project()"
    return mo.group(1)


def pkg_version(name):
    if shutil.which("pkg-config") is None:
        return None
    r = subprocess.run(["pkg-config", "--modversion", name],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else None


def fragments(key, width=8):
    secret = key.split("_", 2)[-1]
    return [secret[i:i + width] for i in range(len(secret) - width + 1)]


def leaks(data, key, pieces=True):
    """Whether the key, or (pieces) any 8 characters of its secret part,
    occur in data. The default key's secret part is "mixpeekfs", which
    paths hold anyway: look only for the whole of it."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) \
        else data
    return key in text or (pieces and any(f in text
                                          for f in fragments(key)))


def endpoint_of(entry):
    """Where mixpeekfs counts a request: list, get or other."""
    path = mfs.path_of(entry)
    if path == "/v1/tasks/list":
        return "list"
    if entry.get("method") == "GET" and path.startswith("/v1/tasks/"):
        return "get"
    return "other"


def expected_request_stats(log):
    """requests, requests.<ep> and requests.<ep>.<code> from the server's
    request log."""
    exp = {"requests": 0, "requests.list": 0, "requests.get": 0,
           "requests.other": 0}
    for e in log:
        assert e.get("status") is not None, "a request was not answered"
        ep = endpoint_of(e)
        exp["requests"] += 1
        exp["requests." + ep] += 1
        key = "requests.%s.%d" % (ep, e["status"])
        exp[key] = exp.get(key, 0) + 1
    return exp


def request_stats(stats):
    return {k: int(v) for k, v in stats.items()
            if k == "requests" or k.startswith("requests.")}


# ---------------------------------------------------------------------------
# layout

def test_meta_folder_layout(server, mounter):
    m = mounter(server, page_size=100, ttl=2,
                extra_opts=["ttl_terminal=600"])
    r = mfs.sh("ls -a; echo ---; ls", m.path)
    with_hidden, plain = r.out.split("---\n")
    assert META in mfs.lines(with_hidden)
    assert META not in mfs.lines(plain)
    assert ".refresh" not in mfs.lines(with_hidden)

    st = os.stat(m.p(META))
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o555, oct(st.st_mode)
    assert sorted(os.listdir(m.p(META))) == META_FILES
    r = mfs.sh("ls -a %s" % META, m.path)
    assert mfs.lines(r.out) == [".", ".."] + META_FILES

    for name in META_FILES:
        st = os.stat(m.p(META, name))
        assert stat.S_ISREG(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == 0o444, (name, oct(st.st_mode))
        data = read(m, META, name)
        assert pairs(data), name
        if name != "stats":         # stats may change between two calls
            assert st.st_size == len(data), name
        e = mfs.errno_of(open, m.p(META, name), "w")
        assert e in (errno.EROFS, errno.EACCES), errname(e)
    e = mfs.errno_of(os.stat, m.p(META, "nope"))
    assert e == errno.ENOENT, errname(e)
    e = mfs.errno_of(os.stat, m.p(META, ".refresh"))
    assert e == errno.ENOENT, errname(e)


def test_version_file(server, mounter):
    m = mounter(server, page_size=100, ttl=2)
    got = pairs(read(m, META, "version"))
    assert [k for k, _ in got] == ["mixpeekfs", "libfuse", "libcurl",
                                   "cjson", "zstd"]
    d = dict(got)
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", d["mixpeekfs"])
    assert d["mixpeekfs"] == meson_version()
    for key, pkg in (("libfuse", "fuse3"), ("libcurl", "libcurl"),
                     ("cjson", "libcjson"), ("zstd", "libzstd")):
        assert re.match(r"[0-9]+\.[0-9]+", d[key]), (key, d[key])
        want = pkg_version(pkg)
        if want is not None:
            assert d[key] == want, (key, d[key], want)
    r = mfs.run_mixpeekfs(["--version"])
    if r.returncode == 0:
        assert d["mixpeekfs"].encode() in r.stdout + r.stderr


# ---------------------------------------------------------------------------
# config

@pytest.mark.parametrize("source", ["env", "key_file"])
def test_config_shows_options_but_never_the_key(server, mounter, tmp_path,
                                                source):
    if not server.set_key(CUSTOM_KEY):
        pytest.skip("the test server has no POST /_test/key")
    opts = ["ttl_terminal=700", "retries=2", "timeout=20"]
    key_file = "-"
    if source == "env":
        m = mounter(server, page_size=50, ttl=3, key=CUSTOM_KEY,
                    extra_opts=opts)
    else:
        key_file = str(tmp_path / "key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(CUSTOM_KEY + "\n")
        m = mounter(server, page_size=50, ttl=3, key=None,
                    extra_opts=opts + ["key_file=" + key_file])
    cfg = kv(m, "config")
    assert cfg["url"] == server.url
    assert cfg["ttl"] == "3"
    assert cfg["ttl_terminal"] == "700"
    assert cfg["page_size"] == "50"
    assert cfg["retries"] == "2"
    assert cfg["timeout"] == "20"
    assert cfg["key"] == "<redacted>"
    assert cfg["mountpoint"] == m.path
    assert cfg["key_file"] == key_file

    # The key is in use (the mount works) and shows nowhere here.
    failed = ids_where(server.dataset(), status="FAILED")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    r = mfs.sh("cat tasks/task_00000000dead/status", m.path, check=False)
    assert r.returncode != 0
    for name in META_FILES:
        data = read(m, META, name)
        assert not leaks(data, CUSTOM_KEY), name
        assert not leaks(data, mfs.DEFAULT_KEY, pieces=False), name
    for k in (CUSTOM_KEY, CUSTOM_KEY[-12:], CUSTOM_KEY[8:16]):
        r = mfs.sh("grep -r -F -e %s %s" % (k, META), m.path, check=False)
        assert r.returncode == 1 and r.out == "", (k, r.out, r.err)


def test_config_defaults_and_ttl_terminal_floor(server, mounter):
    m = mounter(server, page_size=None, ttl=5,
                extra_opts=["ttl_terminal=1"])
    cfg = kv(m, "config")
    assert cfg["url"] == server.url
    assert cfg["ttl"] == "5"
    assert cfg["ttl_terminal"] == "5"       # never less than ttl
    assert cfg["page_size"] == "1000"       # the default
    assert cfg["key"] == "<redacted>"
    for name in META_FILES:
        assert not leaks(read(m, META, name), mfs.DEFAULT_KEY,
                          pieces=False), name
    r = mfs.sh("grep -r -F -e %s %s" % (mfs.DEFAULT_KEY, META), m.path,
               check=False)
    assert r.returncode == 1 and r.out == "", r.out


# ---------------------------------------------------------------------------
# stats

def test_stats_keys_and_rerendered_on_every_read(server, mounter,
                                                 main_tasks):
    t_mount = time.monotonic()
    m = mounter(server, page_size=100, ttl=600)
    failed = ids_where(main_tasks, status="FAILED")
    canceled = ids_where(main_tasks, status="CANCELED")
    s0 = stats_of(m)
    for key in STATS_KEYS:
        assert key in s0, "no %r line in stats" % key
        if key not in NON_NUMERIC:
            num(s0, key)
    assert s0["last_error"] == "-" and s0["last_error_time"] == "-"
    assert num(s0, "task_bytes_max") == 256 << 20       # cache_size
    assert num(s0, "memory_rss") > 0
    assert num(s0, "uptime") <= time.monotonic() - t_mount + 1
    assert num(s0, "tasks_cached") == 0 and num(s0, "listings_cached") == 0

    # No waiting: the next read shows the requests just made.
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    s1 = stats_of(m)
    assert num(s1, "requests.list") == num(s0, "requests.list") + \
        mfs.pages(len(failed), 100)
    assert num(s1, "requests") == num(s0, "requests") + \
        mfs.pages(len(failed), 100)
    assert num(s1, "listings_cached") == 1
    assert num(s1, "listed_tasks") == len(failed)
    assert num(s1, "tasks_cached") == len(failed)
    r = mfs.sh("cat %s/stats; echo ---; ls by-status/CANCELED > /dev/null; "
               "cat %s/stats" % (META, META), m.path)
    first, second = r.out.split("---\n")
    d1, d2 = dict(pairs(first.encode())), dict(pairs(second.encode()))
    assert int(d2["requests.list"]) == int(d1["requests.list"]) + \
        mfs.pages(len(canceled), 100), (first, second)
    assert int(d2["listed_tasks"]) == len(failed) + len(canceled)

    # The same open file, read again from the start, is rendered again.
    fd = os.open(m.p(META, "stats"), os.O_RDONLY)
    try:
        a = dict(pairs(os.pread(fd, 1 << 16, 0)))
        for _ in range(3):
            mfs.sh("cat by-status/CANCELED/.refresh", m.path)
        b = dict(pairs(os.pread(fd, 1 << 16, 0)))
    finally:
        os.close(fd)
    assert int(b["refreshes"]) == int(a["refreshes"]) + 3
    assert int(b["requests.list"]) == int(a["requests.list"]) + \
        3 * mfs.pages(len(canceled), 100)

    # memory_rss is this process's resident size.
    with open("/proc/%d/statm" % m.proc.pid) as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    got = num(stats_of(m), "memory_rss")
    assert rss / 2 <= got <= rss * 2, (got, rss)


@pytest.mark.timeout(120)
def test_stats_match_the_server_counters(server, mounter, main_tasks):
    """Acceptance: a workload of listings, GETs, a 404 and a burst of 503s;
    then the requests counters equal the server's."""
    server.reset()      # so that the startup probe counts on both sides
    m = mounter(server, page_size=100, ttl=600, extra_opts=["retries=3"])
    failed = ids_where(main_tasks, status="FAILED")
    thumbs = ids_where(main_tasks, task_type="thumbnail")
    listed = set(failed) | set(thumbs)
    others = [t["task_id"] for t in main_tasks
              if t["task_id"] not in listed]
    get_ids, retried = others[:3], others[3]
    missing = "task_000000000bad"
    assert missing not in {t["task_id"] for t in main_tasks}

    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    assert sorted(os.listdir(m.p("by-type", "thumbnail"))) == names(thumbs)
    for tid in get_ids:
        r = mfs.sh("cat tasks/%s/status tasks/%s/task_id"
                   % (mfs.escape_name(tid), mfs.escape_name(tid)), m.path)
        assert r.out.split("\n")[1] == tid
    e = mfs.errno_of(os.stat, m.p("tasks", missing))
    assert e == errno.ENOENT, errname(e)
    server.faults(fail_next=2, error_status=503)
    try:
        r = mfs.sh("cat tasks/%s/task_id" % mfs.escape_name(retried),
                   m.path)
        assert r.out == retried + "\n"
    finally:
        server.faults()

    stats = stats_of(m)
    srv = server.stats()
    log = server.log()
    assert len(log) == srv["requests"]["total"]
    got = request_stats(stats)
    assert got == expected_request_stats(log)
    assert num(stats, "requests") == srv["requests"]["total"]
    assert num(stats, "requests.list") == srv["requests"]["list"]
    assert num(stats, "requests.get") == srv["requests"]["get"]
    assert num(stats, "requests.other") == \
        srv["requests"]["other"] + srv["requests"]["delete"]
    by_code = {}
    for k, v in got.items():
        parts = k.split(".")
        if len(parts) == 3:
            by_code[parts[2]] = by_code.get(parts[2], 0) + v
    assert by_code == srv["status_codes"]

    # The same, from what we did.
    lists = 1 + mfs.pages(len(failed), 100) + mfs.pages(len(thumbs), 100)
    gets = len(get_ids) + 1 + 3
    assert got["requests.list"] == got["requests.list.200"] == lists
    assert got["requests.get"] == gets
    assert got["requests.get.200"] == len(get_ids) + 1
    assert got["requests.get.404"] == 1
    assert got["requests.get.503"] == 2
    assert got["requests.other"] == 0
    assert num(stats, "retries") == 2
    assert num(stats, "tasks_cached") == len(listed) + len(get_ids) + 1
    assert num(stats, "listings_cached") == 2
    assert num(stats, "listed_tasks") == len(failed) + len(thumbs)
    assert num(stats, "cache.listings.misses") == 2
    assert num(stats, "cache.tasks.misses") == len(get_ids) + 2
    assert num(stats, "bytes_received") > 0
    assert num(stats, "task_bytes") > 0
    # A 404 and retried 503s are no errors to report.
    assert stats["last_error"] == "-", stats["last_error"]


@pytest.mark.timeout(120)
def test_last_error_after_a_failed_refresh(server, mounter, main_tasks):
    ttl = 1
    m = mounter(server, page_size=100, ttl=ttl,
                extra_opts=["retries=1", "timeout=10"])
    failed = ids_where(main_tasks, status="FAILED")
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    e = mfs.errno_of(os.stat, m.p("tasks", "task_000000000bad"))
    assert e == errno.ENOENT, errname(e)
    s = stats_of(m)
    assert s["last_error"] == "-" and s["last_error_time"] == "-", \
        "a 404 is no error: %r" % s["last_error"]

    server.faults(error_rate=1.0, error_status=503)
    try:
        time.sleep(ttl + 1.0)       # the listing goes stale
        server.reset()
        before = int(time.time())
        assert sorted(os.listdir(m.p("by-status", "FAILED"))) == \
            names(failed)
        after = int(time.time())
        s = stats_of(m)
        log = server.log()
    finally:
        server.faults()
    list_503 = [e for e in mfs.list_entries(log) if e["status"] == 503]
    assert len(list_503) == 2, log          # retries=1: two attempts
    assert int(s["requests.list.503"]) == len(list_503)
    warns = [l for l in m.stderr().splitlines()
             if l.startswith("mixpeekfs: warning: ")]
    assert warns, m.stderr()
    assert s["last_error"] == warns[-1][len("mixpeekfs: warning: "):]
    when = datetime.datetime.strptime(s["last_error_time"],
                                      "%Y-%m-%dT%H:%M:%SZ")
    when = int(when.replace(tzinfo=datetime.timezone.utc).timestamp())
    assert before <= when <= after, (s["last_error_time"], before, after)
