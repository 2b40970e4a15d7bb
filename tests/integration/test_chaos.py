"""Chaos: many concurrent readers against a flaky API whose data changes.

Runs only when MIXPEEKFS_CHAOS_SECONDS is set (CI sets 120)::

    MIXPEEKFS_CHAOS_SECONDS=120 MIXPEEKFS_CHAOS_REPORT=/tmp/chaos.json \\
        /usr/bin/python3 -m pytest -s -m chaos tests/integration

Faults: 20% 503, 5% 429 (Retry-After), 5% HTML garbage; the X-RateLimit
headers of a bucket the readers never empty. 16 reader threads
run ls, find, grep -l and cat with a per-operation time limit while another
thread changes task statuses about every 100 ms. Every operation must
succeed with data that the server held at some point, or fail with EIO,
ENOENT, EACCES or ESTALE; nothing may hang or crash, and the daemon's
memory stays bounded (VmRSS < 300 MB; x4 for a sanitizer build;
MIXPEEKFS_CHAOS_RSS_MB overrides). Counts are printed and written as JSON
to MIXPEEKFS_CHAOS_REPORT when it is set.
"""

import errno
import json
import os
import random
import shlex
import subprocess
import threading
import time

import pytest

import mfs

SECONDS_ENV = "MIXPEEKFS_CHAOS_SECONDS"
REPORT_ENV = "MIXPEEKFS_CHAOS_REPORT"
_SECONDS = os.environ.get(SECONDS_ENV, "")
SECONDS = float(_SECONDS) if _SECONDS.strip() else 0.0

COUNT = 2000
SEED = 424242
READERS = 16
OP_TIMEOUT = 60          # one shell operation
TTL = 2
RSS_LIMIT_MB = 300       # for a plain build; MIXPEEKFS_CHAOS_RSS_MB overrides
ALLOWED = (errno.EIO, errno.ENOENT, errno.EACCES, errno.ESTALE)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(SECONDS <= 0, reason="chaos test: set %s (seconds)"
                       % SECONDS_ENV),
]


def rss_limit_kb():
    """The VmRSS bound: 300 MB, four times that for a sanitizer build
    (shadow memory and quarantine), or MIXPEEKFS_CHAOS_RSS_MB."""
    env = os.environ.get("MIXPEEKFS_CHAOS_RSS_MB", "").strip()
    if env:
        return int(env) * 1024
    with open(mfs.mixpeekfs_bin(), "rb") as f:
        image = f.read()
    sanitized = b"__asan_init" in image or b"__tsan_init" in image
    return RSS_LIMIT_MB * 1024 * (4 if sanitized else 1)


@pytest.fixture(scope="module")
def chaos_server(fuse_ok, workdir):
    # Mixpeek's X-RateLimit-* headers on every answer, as the real API
    # sends them, from a bucket the readers never empty: the injected
    # 429s then come with tokens left, refusals for concurrency (without
    # headers, a 429 cannot be told from the rate's: see test_limits.py)
    srv = mfs.Server(os.path.join(workdir, "srv-chaos"), count=COUNT,
                     seed=SEED, rate_per_minute=600000, burst=100000,
                     extra_keys=True)
    yield srv
    srv.stop()


def expected_paths(tree, prefix):
    """Every path below a task folder (files and folders) from its tree."""
    out = set()
    for name, node in tree.items():
        p = prefix + "/" + name
        out.add(p)
        if isinstance(node, dict):
            out |= expected_paths(node, p)
    return out


def expected_files(tree, prefix=""):
    """(relative path, ExpFile) of every file in a task tree."""
    out = []
    for name, node in tree.items():
        p = name if not prefix else prefix + "/" + name
        if isinstance(node, dict):
            out.extend(expected_files(node, p))
        else:
            out.append((p, node))
    return out


# Fields the status changer touches: their values may be any seen so far.
CHANGING = ("status", "updated_at")

STRERRORS = {e: os.strerror(e) for e in (
    errno.EIO, errno.ENOENT, errno.EACCES, errno.ESTALE, errno.ENOTCONN,
    errno.EINVAL, errno.ENOMEM, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
    errno.ENAMETOOLONG, errno.EOVERFLOW, errno.EBADF, errno.ENXIO,
    errno.ECONNABORTED, errno.EINTR, errno.EAGAIN, errno.ENOSYS,
    errno.EROFS, errno.ELOOP, errno.E2BIG, errno.EFAULT, errno.ERANGE)}


def errnos_in(stderr):
    """The errnos named by a tool's stderr lines; None for a line that
    names none of them."""
    found = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        hit = None
        for e, text in STRERRORS.items():
            if line.rstrip().endswith(text):
                hit = e
                break
        found.append((hit, line))
    return found


class Chaos(object):
    def __init__(self, srv, mount, tasks):
        self.srv = srv
        self.m = mount
        self.tasks = tasks
        self.by_id = {t["task_id"]: t for t in tasks}
        self.ids = [t["task_id"] for t in tasks]
        self.names = {mfs.escape_name(i): i for i in self.ids}
        self.statuses = sorted({t["status"] for t in tasks} |
                               set(mfs.import_dataset().STATUSES))
        self.types = sorted({t["task_type"] for t in tasks})
        self.by_type = {}
        for t in tasks:
            self.by_type.setdefault(t["task_type"], set()).add(
                mfs.escape_name(t["task_id"]))
        self.trees = {}
        self.lock = threading.Lock()
        # every status each task has had (recorded before the server is
        # told), so anything the server ever served is in here
        self.history = {t["task_id"]: {t["status"]} for t in tasks}
        self.stop = threading.Event()
        self.ops = {}
        self.errors = {}
        self.problems = []
        self.hangs = []
        self.changes = 0
        self.change_failures = 0
        self.rss_max_kb = 0
        self.rss_samples = 0
        self.daemon_died = None

    # -- bookkeeping
    def tree(self, tid):
        t = self.trees.get(tid)
        if t is None:
            t = mfs.expected_task_tree(self.by_id[tid])
            self.trees[tid] = t
        return t

    def hist(self, tid):
        with self.lock:
            return set(self.history[tid])

    def count(self, kind, outcome):
        with self.lock:
            d = self.ops.setdefault(kind, {})
            d[outcome] = d.get(outcome, 0) + 1

    def problem(self, kind, cmd, text):
        with self.lock:
            self.problems.append("%s: %s: %s" % (kind, cmd, text))

    # -- one shell operation
    def run(self, kind, cmd):
        """(returncode, stdout) or None after a hang/bad error."""
        try:
            r = mfs.sh(cmd, self.m.path, timeout=OP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            with self.lock:
                self.hangs.append("%s: %s" % (kind, cmd))
            self.count(kind, "HANG")
            return None
        errs = errnos_in(r.err)
        bad = [line for e, line in errs if e not in ALLOWED]
        if bad:
            self.problem(kind, cmd, "unexpected error: %s" % bad[:3])
            self.count(kind, "BAD_ERRNO")
            return None
        for e, _line in errs:
            with self.lock:
                self.errors[errno.errorcode[e]] = \
                    self.errors.get(errno.errorcode[e], 0) + 1
        if errs:
            self.count(kind, "err:" + ",".join(sorted(
                {errno.errorcode[e] for e, _l in errs})))
            # tasks/<id>/... always exists: ENOENT there is wrong data
            for e, line in errs:
                if e == errno.ENOENT and "tasks/" in line and \
                        "by-status/" not in line and \
                        not any(("/" + f) in line for f in CHANGING):
                    self.problem(kind, cmd, "ENOENT for a path that "
                                 "exists: %s" % line)
        elif r.returncode == 0 or (kind == "grep" and r.returncode == 1):
            self.count(kind, "ok")
        else:
            self.problem(kind, cmd, "exit %d without an error message"
                         % r.returncode)
            self.count(kind, "BAD_EXIT")
            return None
        return r.returncode, r.out, bool(errs)

    # -- operations
    def op_ls_status(self, rng):
        s = rng.choice(self.statuses)
        res = self.run("ls-status", "ls -1 by-status/%s" % s)
        if res is None:
            return
        rc, out, failed = res
        got = mfs.lines(out)
        if len(got) != len(set(got)):
            self.problem("ls-status", s, "duplicate entries")
        for name in got:
            tid = self.names.get(name)
            if tid is None:
                self.problem("ls-status", s, "unknown entry %r" % name)
            elif s not in self.hist(tid):
                self.problem("ls-status", s, "%s never had status %s "
                             "(had %s)" % (tid, s, sorted(self.hist(tid))))

    def op_ls_type(self, rng):
        t = rng.choice(self.types)
        res = self.run("ls-type", "ls -1 by-type/%s" % t)
        if res is None:
            return
        rc, out, failed = res
        got = mfs.lines(out)
        if failed:
            if got and not set(got) <= self.by_type[t]:
                self.problem("ls-type", t, "unknown entries")
            return
        if len(got) != len(set(got)) or set(got) != self.by_type[t]:
            self.problem("ls-type", t, "%d entries, want %d (missing %r, "
                         "extra %r)" % (
                             len(got), len(self.by_type[t]),
                             sorted(self.by_type[t] - set(got))[:3],
                             sorted(set(got) - self.by_type[t])[:3]))

    def op_find(self, rng):
        tid = rng.choice(self.ids)
        base = "tasks/" + mfs.escape_name(tid)
        res = self.run("find", "find %s" % shlex.quote(base))
        if res is None:
            return
        rc, out, failed = res
        want = expected_paths(self.tree(tid), base) | {base,
                                                        base + "/task.json"}
        got = set(mfs.lines(out))
        loose = {base + "/" + f for f in CHANGING}
        extra = got - want - loose
        if extra:
            self.problem("find", base, "unexpected paths %r" % sorted(
                extra)[:5])
        if not failed:
            missing = want - got - loose
            if missing:
                self.problem("find", base, "missing paths %r" % sorted(
                    missing)[:5])

    def op_grep(self, rng):
        s = rng.choice(self.statuses)
        src = rng.choice(self.tasks)["description"].split()
        word = rng.choice(src) if src else "a"
        cmd = "grep -l -F -e %s by-status/%s/*/description" % (
            shlex.quote(word), s)
        res = self.run("grep", cmd)
        if res is None:
            return
        rc, out, failed = res
        for line in mfs.lines(out):
            parts = line.split("/")
            if len(parts) != 4 or parts[0] != "by-status" or \
                    parts[1] != s or parts[3] != "description":
                self.problem("grep", cmd, "odd output line %r" % line)
                continue
            tid = self.names.get(parts[2])
            if tid is None:
                self.problem("grep", cmd, "unknown task %r" % parts[2])
            elif word not in self.by_id[tid]["description"]:
                self.problem("grep", cmd, "%s does not contain %r" % (
                    tid, word))
            elif s not in self.hist(tid):
                self.problem("grep", cmd, "%s never had status %s" % (
                    tid, s))

    def op_cat(self, rng):
        tid = rng.choice(self.ids)
        name = mfs.escape_name(tid)
        files = expected_files(self.tree(tid))
        pick = rng.random()
        if pick < 0.15:
            rel, exp = "task.json", None
        elif pick < 0.3:
            rel, exp = "status", None
        else:
            rel, exp = rng.choice(files)
        if rng.random() < 0.3:
            s = rng.choice(sorted(self.hist(tid)))
            path = "by-status/%s/%s/%s" % (s, name, rel)
        else:
            path = "tasks/%s/%s" % (name, rel)
        res = self.run("cat", "cat %s" % shlex.quote(path))
        if res is None:
            return
        rc, out, failed = res
        if failed:
            if out:
                self.problem("cat", path, "output and an error: %r" %
                             out[:100])
            return
        self.check_file(tid, rel, out, exp, path)

    def check_file(self, tid, rel, out, exp, path):
        task = self.by_id[tid]
        hist = self.hist(tid)
        if rel == "task.json":
            try:
                doc = json.loads(out)
            except ValueError as e:
                self.problem("cat", path, "task.json is not JSON (%s): %r"
                             % (e, out[:200]))
                return
            if not isinstance(doc, dict) or doc.get("task_id") != tid:
                self.problem("cat", path, "task.json of another task")
                return
            if doc.get("status") not in hist:
                self.problem("cat", path, "status %r never set (had %s)"
                             % (doc.get("status"), sorted(hist)))
            for k in set(doc) | set(task):
                if k in CHANGING:
                    continue
                if doc.get(k) != task.get(k):
                    self.problem("cat", path, "task.json field %r differs"
                                 % k)
                    break
            return
        if rel == "status":
            if not out.endswith("\n") or out[:-1] not in hist:
                self.problem("cat", path, "status %r never set (had %s)"
                             % (out, sorted(hist)))
            return
        if rel == "updated_at":
            if not out.endswith("\n") or len(out) < 10:
                self.problem("cat", path, "odd updated_at %r" % out)
            return
        data = out.encode("utf-8", "surrogateescape")
        if not exp.matches(data):
            self.problem("cat", path, "got %r, want %r" % (
                data[:200], exp.canonical()[:200]))

    # -- threads
    def reader(self, k):
        rng = random.Random(SEED * 31 + k)
        ops = [self.op_ls_status, self.op_ls_type, self.op_find,
               self.op_grep, self.op_cat, self.op_cat]
        while not self.stop.is_set():
            op = rng.choice(ops)
            try:
                op(rng)
            except Exception as e:      # a bug in the checker itself
                self.problem("reader", op.__name__, "%s: %r" % (
                    type(e).__name__, e))

    def changer(self):
        rng = random.Random(SEED)
        while not self.stop.is_set():
            tid = rng.choice(self.ids)
            new = rng.choice(self.statuses)
            with self.lock:
                self.history[tid].add(new)
            try:
                self.srv.update_task(tid, {"status": new})
                self.changes += 1
            except Exception:
                self.change_failures += 1
            self.stop.wait(0.1)

    def sampler(self):
        pid = self.m.proc.pid
        while not self.stop.is_set():
            if self.m.proc.poll() is not None:
                self.daemon_died = self.m.proc.returncode
                self.stop.set()
                return
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            kb = int(line.split()[1])
                            self.rss_max_kb = max(self.rss_max_kb, kb)
                            self.rss_samples += 1
            except OSError:
                pass
            self.stop.wait(1.0)


@pytest.mark.timeout(int(SECONDS) + 600)
def test_chaos(chaos_server, mounter):
    srv = chaos_server
    srv.reset(dataset=True, faults=True)
    tasks = srv.dataset()
    assert len(tasks) == COUNT
    m = mounter(srv, page_size=100, ttl=TTL,
                extra_opts=["retries=3", "timeout=10"])
    ch = Chaos(srv, m, tasks)
    srv.faults(error_rate=0.2, error_status=503, rate_429=0.05,
               retry_after="1", garbage_rate=0.05, seed=SEED)
    threads = [threading.Thread(target=ch.reader, args=(k,), daemon=True)
               for k in range(READERS)]
    threads.append(threading.Thread(target=ch.changer, daemon=True))
    threads.append(threading.Thread(target=ch.sampler, daemon=True))
    t0 = time.monotonic()
    try:
        for th in threads:
            th.start()
        ch.stop.wait(SECONDS)
    finally:
        ch.stop.set()
        for th in threads:
            th.join(OP_TIMEOUT + 30)
        srv.faults()
    elapsed = time.monotonic() - t0
    stuck = [th.name for th in threads if th.is_alive()]

    # Faults gone: the mount answers with the server's current data.
    after = []
    alive = m.proc.poll() is None
    if alive:
        time.sleep(TTL + 1)     # let every listing expire
        current = {t["task_id"]: t for t in srv.dataset()}
        for t in ch.types[:3]:
            got = set(os.listdir(m.p("by-type", t)))
            if got != ch.by_type[t]:
                after.append("by-type/%s: %d entries, want %d" % (
                    t, len(got), len(ch.by_type[t])))
        s = "FAILED"
        want = {mfs.escape_name(i) for i, t in current.items()
                if t["status"] == s}
        got = set(os.listdir(m.p("by-status", s)))
        if got != want:
            after.append("by-status/%s: %d entries, want %d" % (
                s, len(got), len(want)))
        for tid in random.Random(1).sample(ch.ids, 20):
            with open(m.p("tasks", mfs.escape_name(tid), "status")) as f:
                v = f.read()
            if v != current[tid]["status"] + "\n":
                after.append("tasks/%s/status: %r, server has %r" % (
                    tid, v, current[tid]["status"]))

    stats = srv.stats()
    total_ops = sum(sum(d.values()) for d in ch.ops.values())
    report = {
        "seconds": round(elapsed, 1),
        "readers": READERS,
        "operations": total_ops,
        "operations_by_kind": ch.ops,
        "errors_by_errno": ch.errors,
        "problems": len(ch.problems),
        "problem_samples": ch.problems[:30],
        "hangs": ch.hangs[:30],
        "status_changes": ch.changes,
        "status_change_failures": ch.change_failures,
        "max_rss_kb": ch.rss_max_kb,
        "rss_limit_kb": rss_limit_kb(),
        "rss_samples": ch.rss_samples,
        "daemon_alive": alive,
        "daemon_exit": ch.daemon_died,
        "after_faults": after,
        "stuck_threads": stuck,
        "server_requests": stats.get("requests"),
        "server_status_codes": stats.get("status_codes"),
    }
    text = json.dumps(report, indent=2, sort_keys=True)
    print("\nchaos report:\n" + text)
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")

    assert alive, "the daemon died (exit %s):\n%s" % (
        m.proc.returncode, m.stderr()[-4000:])
    assert not stuck, "threads still running: %r" % stuck
    assert not ch.hangs, "operations hung (> %ds): %r" % (
        OP_TIMEOUT, ch.hangs[:10])
    assert not ch.problems, "%d problems, e.g.:\n%s" % (
        len(ch.problems), "\n".join(ch.problems[:20]))
    assert not after, "after the faults: %r" % after
    assert ch.rss_samples > 0
    limit = rss_limit_kb()
    assert ch.rss_max_kb < limit, "VmRSS peaked at %d kB (limit %d kB)" % (
        ch.rss_max_kb, limit)
    for kind in ("ls-status", "ls-type", "find", "grep", "cat"):
        assert ch.ops.get(kind, {}).get("ok", 0) > 0, \
            "no %s succeeded: %r" % (kind, ch.ops.get(kind))
    codes = stats.get("status_codes", {})
    assert codes.get("503", 0) > 0 and codes.get("429", 0) > 0, codes
