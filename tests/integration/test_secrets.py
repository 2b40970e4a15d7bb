"""The API key stays secret: not in argv, the environment, ps, logs at any
level, error messages or the mount; no key on the command line; no plain
http to other hosts."""

import errno
import os
import socket
import subprocess
import threading

import pytest

import mfs

# Distinctive keys: random-looking, so that any 8 characters of their
# secret part found somewhere are a leak, not a coincidence.
KEY = "sk_live_Qz7vKp2WmX9tRb4YcN8dLs3F"
DECOY = "sk_live_Hj5gTe1UoZ6aPq0VwI4xMk7B"     # in the env, never used
WRONG = "sk_live_Rr8nCb2QyE5sJt7LuA1oDf9G"     # a key the server refuses


def fragments(key, width=8):
    """Every run of ``width`` characters of the key's secret part."""
    secret = key[len("sk_live_"):]
    return [secret[i:i + width] for i in range(len(secret) - width + 1)]


def leaks(data, *keys):
    """Which keys (or fragments of them) occur in data (str or bytes)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    found = []
    for k in keys:
        if k in data:
            found.append(k)
            continue
        for f in fragments(k):
            if f in data:
                found.append("%s (fragment %r of it)" % (k, f))
                break
    return found


def read_proc(pid, name):
    with open("/proc/%d/%s" % (pid, name), "rb") as f:
        return f.read()


def write_key_file(path, content, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(path, mode)


@pytest.fixture
def keyed(server):
    """The shared server, expecting KEY (the server fixture restores it)."""
    if not server.set_key(KEY):
        pytest.skip("the test server has no POST /_test/key")
    return server


def mount_with(mounter, srv, source, tmp_path, extra=()):
    """A mount that uses KEY, from the environment or from a key file (then
    the environment holds DECOY, which must be wiped as well)."""
    if source == "env":
        return mounter(srv, page_size=100, ttl=600, key=KEY,
                       extra_opts=list(extra))
    kf = str(tmp_path / "key")
    write_key_file(kf, KEY + "\n")
    return mounter(srv, page_size=100, ttl=600, key=DECOY,
                   extra_opts=["key_file=" + kf] + list(extra))


@pytest.mark.parametrize("source", ["env", "key_file"])
def test_key_not_in_proc_or_ps(keyed, mounter, main_tasks, tmp_path,
                               source):
    m = mount_with(mounter, keyed, source, tmp_path)
    # The mount works with KEY (so the daemon does hold it).
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    assert len(os.listdir(m.p("by-status", "FAILED"))) == len(failed)
    pid = m.proc.pid
    cmdline = read_proc(pid, "cmdline")
    assert b"mixpeekfs" in cmdline or b"url=" in cmdline, cmdline
    assert not leaks(cmdline, KEY, DECOY), cmdline
    environ = read_proc(pid, "environ")
    assert environ, "empty /proc/PID/environ"
    assert not leaks(environ, KEY, DECOY), \
        "/proc/%d/environ holds %r" % (pid, leaks(environ, KEY, DECOY))
    for tid in os.listdir("/proc/%d/task" % pid):
        env_t = read_proc(pid, "task/%s/environ" % tid)
        assert not leaks(env_t, KEY, DECOY), "thread %s environ" % tid
    for args in (["ps", "-ef"], ["ps", "-eww", "-o", "pid,args"],
                 ["ps", "eww", "-p", str(pid)]):
        r = subprocess.run(args, capture_output=True, timeout=30)
        assert r.returncode == 0, (args, r.stderr)
        assert str(pid).encode() in r.stdout, (args, r.stdout[-2000:])
        assert not leaks(r.stdout, KEY, DECOY), \
            "%s shows %r" % (" ".join(args), leaks(r.stdout, KEY, DECOY))
    with open("/proc/self/mountinfo", "rb") as f:
        assert not leaks(f.read(), KEY, DECOY)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("source", ["env", "key_file"])
def test_key_not_in_debug_log(keyed, mounter, main_tasks, tmp_path, source):
    """-o debug with a workload of successes and failures: the key never
    shows on stderr (while running or after unmounting)."""
    m = mount_with(mounter, keyed, source, tmp_path,
                   extra=["debug", "retries=1", "timeout=10"])
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    t0 = failed[0]["task_id"]
    r = mfs.sh("ls -l by-status/FAILED | wc -l; cat by-status/FAILED/%s/"
               "description by-status/FAILED/%s/task.json; "
               "grep -l . by-status/FAILED/*/status | wc -l"
               % (t0, t0), m.path, timeout=120)
    assert str(len(failed)) in r.out
    # A task no listing has shown: GET; then a 404.
    other = next(t for t in main_tasks if t["status"] == "PENDING")
    with open(m.p("tasks", other["task_id"], "status")) as f:
        assert f.read() == "PENDING\n"
    e = mfs.errno_of(os.stat, m.p("tasks", "task_does_not_exist_000"))
    assert e == errno.ENOENT, errno.errorcode.get(e, e)
    # 5xx, retried once, then EIO.
    keyed.faults(error_rate=1.0, error_status=500)
    try:
        e = mfs.errno_of(os.listdir, m.p("by-status", "DRAFT"))
        assert e == errno.EIO, errno.errorcode.get(e, e)
    finally:
        keyed.faults()
    # 429 with Retry-After, then success.
    keyed.faults(fail_next=1, error_status=429)
    n = len(os.listdir(m.p("by-status", "SKIPPED")))
    assert n == sum(1 for t in main_tasks if t["status"] == "SKIPPED")
    # The key is rotated on the server: 401 -> EACCES.
    keyed.set_key(WRONG)
    e = mfs.errno_of(os.listdir, m.p("by-status", "ARCHIVED"))
    assert e == errno.EACCES, errno.errorcode.get(e, e)
    e = mfs.errno_of(os.stat, m.p("tasks", "task_does_not_exist_001"))
    assert e == errno.EACCES, errno.errorcode.get(e, e)
    err = m.stderr()
    # The debug log did log requests (so there was something to leak).
    assert "/v1/tasks/list" in err and "/v1/tasks/" in err, err[-2000:]
    assert "401" in err, err[-2000:]
    assert not leaks(err, KEY, DECOY), \
        "stderr leaks %r:\n%s" % (leaks(err, KEY, DECOY), err[-3000:])
    problems = m.unmount()
    assert not problems, problems
    err = m.stderr()
    assert not leaks(err, KEY, DECOY), "after unmount: %r" % (
        leaks(err, KEY, DECOY),)


def test_key_not_in_any_file_of_the_mount(keyed, mounter, main_tasks):
    m = mounter(keyed, page_size=100, ttl=600, key=KEY)
    other = next(t for t in main_tasks if t["status"] == "PENDING")
    for frag in [KEY] + fragments(KEY)[::4]:
        r = mfs.sh("grep -r -F -l -e '%s' README by-status/FAILED tasks/%s"
                   % (frag, other["task_id"]), m.path, check=False,
                   timeout=120)
        # 1: read everything, matched nothing (2 would be a read error)
        assert r.returncode == 1, (frag, r.returncode, r.out[:2000],
                                   r.err[-2000:])
    # The walk did read the task files (the grep was not vacuous).
    r = mfs.sh("grep -r -l -F -e FAILED by-status/FAILED | wc -l", m.path,
               timeout=120)
    assert int(r.out.strip()) >= sum(1 for t in main_tasks
                                     if t["status"] == "FAILED")



def opts(url, *more):
    return ",".join(["url=" + url, "page_size=100", "ttl=600"] + list(more))


def test_wrong_key_with_debug_not_printed(keyed, mountpoint, tmp_path):
    r = mfs.run_fail(["-f", "-o", opts(keyed.url, "debug"), mountpoint],
                 key=WRONG)
    assert "401" in r.err or "key" in r.err.lower(), r.err
    assert not leaks(r.err + r.out, WRONG, KEY), (leaks(r.err, WRONG), r.err)
    assert not os.path.ismount(mountpoint)
    # The same from a key file.
    kf = str(tmp_path / "key")
    write_key_file(kf, WRONG + "\n")
    r = mfs.run_fail(["-f", "-o", opts(keyed.url, "debug", "key_file=" + kf),
                  mountpoint], key=None)
    assert not leaks(r.err + r.out, WRONG, KEY), r.err
    assert not os.path.ismount(mountpoint)


def test_unreachable_url_with_debug_not_printed(fuse_ok, mountpoint):
    url = "http://127.0.0.1:%d" % mfs.free_port()
    r = mfs.run_fail(["-f", "-o", opts(url, "debug", "retries=0",
                                   "connect_timeout=2", "timeout=5"),
                  mountpoint], key=KEY)
    assert not leaks(r.err + r.out, KEY), r.err
    assert not os.path.ismount(mountpoint)


def test_key_with_line_break_refused_without_echo(keyed, mountpoint,
                                                  tmp_path):
    kf = str(tmp_path / "key")
    write_key_file(kf, KEY + "\n" + WRONG + "\n")
    r = mfs.run_fail(["-o", opts(keyed.url, "key_file=" + kf), mountpoint],
                 key=None)
    assert not leaks(r.err + r.out, KEY, WRONG), r.err
    assert not os.path.ismount(mountpoint)


@pytest.mark.parametrize("form", ["alone", "among", "joined", "with-env"])
def test_key_option_refused(keyed, mountpoint, form):
    """-o key=... is refused, with a message (that does not repeat the
    key), before any request and without mounting."""
    keyed.reset()
    if form == "alone":
        args = ["-o", opts(keyed.url), "-o", "key=" + KEY, mountpoint]
    elif form == "among":
        args = ["-o", "url=%s,key=%s,ttl=600" % (keyed.url, KEY), mountpoint]
    elif form == "joined":
        args = ["-o" + opts(keyed.url, "key=" + KEY), mountpoint]
    else:
        args = ["-o", opts(keyed.url, "key=" + KEY), mountpoint]
    r = mfs.run_fail(args, key=KEY if form == "with-env" else None)
    low = r.err.lower()
    assert "key" in low, r.err
    assert "MIXPEEK_API_KEY" in r.err or "key_file" in r.err, r.err
    assert not leaks(r.err + r.out, KEY), r.err
    assert not os.path.ismount(mountpoint)
    assert keyed.requests()["total"] == 0, "a request was made"


def non_loopback_ip():
    """An address of this host that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))     # no packet is sent for UDP
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    if ip.startswith("127.") or ip == "0.0.0.0":
        return None
    return ip


class Listener(object):
    """A TCP listener on all addresses that counts connections."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.data = b""
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            c.settimeout(1)
            try:
                self.data += c.recv(65536)
            except OSError:
                pass
            c.close()

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


def test_plain_http_to_other_host_refused(fuse_ok, mountpoint):
    # A name that cannot resolve: refused by the option check, at once.
    r = mfs.run_fail(["-o", opts("http://example.invalid"), mountpoint],
                 key=KEY, limit=5)
    assert "allow_http" in r.err, r.err
    assert not leaks(r.err + r.out, KEY), r.err
    assert not os.path.ismount(mountpoint)

    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address to check for network activity")
    lst = Listener()
    try:
        url = "http://%s:%d" % (ip, lst.port)
        r = mfs.run_fail(["-o", opts(url, "retries=0", "connect_timeout=2",
                                 "timeout=3"), mountpoint], key=KEY, limit=5)
        assert "allow_http" in r.err, r.err
        # A connection the daemon made would be accepted before this one.
        with socket.create_connection((ip, lst.port), 5) as c:
            c.sendall(b"marker")
        mfs.wait_until(lambda: b"marker" in lst.data, 10,
                       "the listener to accept our own connection")
        assert lst.connections == 1, "connected before refusing"
        assert not os.path.ismount(mountpoint)
        # Control: with allow_http the same URL is contacted (so the
        # listener would have seen a refused mount's connection). The
        # listener is not an API, so this mount fails too.
        r = mfs.run_fail(["-o", opts(url, "allow_http", "retries=0",
                                 "connect_timeout=2", "timeout=3"),
                      mountpoint], key=KEY, limit=20)
        mfs.wait_until(lambda: b"/v1/tasks/list" in lst.data, 5,
                       "the allow_http mount's request")
        assert lst.connections > 1
        assert not os.path.ismount(mountpoint)
    finally:
        lst.close()
