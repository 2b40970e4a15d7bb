"""Security hardening (issue 10): one section per numbered finding of the
audit. The key goes only to the API (findings 1-3), nothing forges a
request or a log line (4, 5), the key stays out of core dumps and odd key
files are refused (6, 7), a revoked key stops the mount (8), TLS is checked
with a specific reason (9), and shutdown does not wait for a hung request
(10).

The proxy, redirect and header tests use small loopback listeners of their
own that record every byte they receive. The TLS tests use self-signed
certificates made at test time (openssl req -x509).
"""

import errno
import os
import re
import resource
import selectors
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import types
from http.server import BaseHTTPRequestHandler

import pytest

import mfs
import test_secrets
from mfs import ids_where
from test_secrets import KEY, WRONG, leaks, opts, write_key_file

# A fixture shared with test_secrets: the main server expecting KEY (the
# empty mount point, mountpoint, is conftest.py's).
keyed = test_secrets.keyed

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
              "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
CA_VARS = ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
PASSWORD = "pw_S3cretPass"
TLS_COUNT, TLS_SEED = 300, 4242


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No proxy or CA variable of the caller's reaches a daemon, unless a
    test passes one on purpose."""
    for var in PROXY_VARS + CA_VARS:
        monkeypatch.delenv(var, raising=False)


def refused(args, key=KEY, limit=10):
    """Run mixpeekfs; it must refuse with exactly one line of its own."""
    r = mfs.run_fail(args, key, limit=limit)
    got = r.err.splitlines()
    assert len(got) == 1 and got[0].startswith("mixpeekfs: "), \
        "expected one line 'mixpeekfs: ...' on stderr, got %r" % r.err
    return r


def not_mounted(path):
    assert not mfs.mounted(path), "%s is mounted" % path


def attempt(fn, *args, **kw):
    """(result, None) or (None, the AssertionError/OSError raised)."""
    try:
        return fn(*args, **kw), None
    except (AssertionError, OSError) as e:
        return None, e


def n_failed(tasks):
    return len(ids_where(tasks, status="FAILED"))


def list_failed(m):
    return len(os.listdir(m.p("by-status", "FAILED")))


# ---------------------------------------------------------------------------
# Loopback listeners that record raw bytes

class LoopbackServer(socketserver.ThreadingTCPServer):
    """A threading TCP server on 127.0.0.1, serving from a thread of its
    own until the end of its ``with`` block."""

    daemon_threads = True
    stopping = False

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.port = self.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.serve_forever,
                         kwargs={"poll_interval": 0.1}, daemon=True).start()

    def __exit__(self, *exc):
        self.stopping = True
        self.shutdown()
        self.server_close()


class _Conn(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.server.serve_conn(self.request)
        except OSError:
            pass
        finally:
            with self.server.lock:
                self.server.active -= 1


class Recorder(LoopbackServer):
    """A listener that records every byte it receives and never answers: a
    connection is read until the peer closes it or is idle for ``idle``
    seconds."""

    _markers = iter(range(1 << 30))

    def __init__(self, idle=1.0):
        self.idle = idle
        self.lock = threading.Lock()
        self.chunks = []
        self.active = 0     # connections accepted and not yet over
        super().__init__(_Conn)

    def process_request(self, request, client_address):
        with self.lock:     # counted in the accepting thread, in order
            self.active += 1
        super().process_request(request, client_address)

    def serve_conn(self, conn):
        conn.settimeout(self.idle)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            self.record(data)

    def record(self, data):
        with self.lock:
            self.chunks.append(data)

    def data(self):
        with self.lock:
            return b"".join(self.chunks)

    def settle(self, timeout=30):
        """Every byte received, once each connection made before now is
        over: a marker connection of ours is accepted after them."""
        marker = b"\0marker-%d\0" % next(self._markers)
        with socket.create_connection(("127.0.0.1", self.port), 10) as s:
            s.sendall(marker)
        mfs.wait_until(lambda: marker in self.data() and not self.active,
                       timeout, "the listener's connections to end")
        return self.data().replace(marker, b"")


class ConnectProxy(Recorder):
    """An http proxy that only tunnels (CONNECT) to loopback ports and
    records what the client sends it, the tunnelled bytes included."""

    def __init__(self):
        super().__init__(idle=60)

    def serve_conn(self, conn):
        conn.settimeout(60)
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return
            self.record(data)
            head += data
        m = re.match(rb"CONNECT (?:localhost|127\.0\.0\.1):(\d+) "
                     rb"HTTP/1\.[01]\r\n", head)
        if not m:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0"
                         b"\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", int(m.group(1))),
                                      10) as up:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            up.sendall(head.split(b"\r\n\r\n", 1)[1])
            self._pipe(conn, up)

    def _pipe(self, conn, up):
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, conn)
        while not self.stopping:
            for key, _ in sel.select(0.5):
                data = key.fileobj.recv(65536)
                if not data:
                    return
                if key.fileobj is conn:
                    self.record(data)
                key.data.sendall(data)


class Redirector(LoopbackServer):
    """A fake API that answers every request with ``302 Found`` to
    ``location``; counts the requests."""

    def __init__(self, location):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = reply

            def log_message(self, *args):
                pass

        super().__init__(Handler)


# ---------------------------------------------------------------------------
# Findings 1 and 2: which URLs count as loopback for plain http

def test_f1_name_beginning_with_127_is_not_loopback(server, mountpoint):
    url = "http://127.evil.example:%d" % server.port
    r = refused(["-o", opts(url, "retries=0", "connect_timeout=2",
                            "timeout=5"), mountpoint])
    assert "refusing plain http to '127.evil.example'" in r.err.lower(), \
        r.err
    assert not leaks(r.err, KEY)
    not_mounted(mountpoint)
    assert server.requests()["total"] == 0


@pytest.mark.parametrize("form", ["localhost:x@0.0.0.0", "127.0.0.1@0.0.0.0",
                                  "user:%s@127.0.0.1" % PASSWORD,
                                  "source user:%s@127.0.0.1" % PASSWORD])
def test_f2_userinfo_in_url_refused(server, mountpoint, form):
    """The host after '@' is the real one; a user name or password in the
    URL is refused, before any request, without echoing the password."""
    as_source = form.startswith("source ")
    url = "http://%s:%d" % (form.split(" ")[-1], server.port)
    if as_source:
        args = ["-o", opts(server.url).split(",", 1)[1], url, mountpoint]
    else:
        args = ["-o", opts(url), mountpoint]
    r = refused(args)
    assert "user name or password" in r.err.lower(), r.err
    assert PASSWORD not in r.err and "S3cret" not in r.err, r.err
    not_mounted(mountpoint)
    with open("/proc/self/mountinfo") as f:
        assert PASSWORD not in f.read()
    assert server.requests()["total"] == 0, \
        "the key went to the server: %r" % server.log()[:2]


@pytest.mark.parametrize("tail", ["/?x=1", "/#frag"])
def test_f2_query_or_fragment_refused(server, mountpoint, tail):
    r = refused(["-o", opts(server.url + tail), mountpoint])
    assert "query or fragment" in r.err.lower(), r.err
    not_mounted(mountpoint)
    assert server.requests()["total"] == 0, server.log()[:2]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_f1_loopback_http_mounts(server, mounter, main_tasks, host):
    m = mounter(server, url="http://%s:%d" % (host, server.port))
    assert list_failed(m) == n_failed(main_tasks)


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]"])
def test_f1_other_loopback_addresses_accepted(fuse_ok, mountpoint, host):
    """Nothing listens there: the URL passes the check, connecting fails."""
    url = "http://%s:%d" % (host, mfs.free_port())
    r = refused(["-o", opts(url, "retries=0", "connect_timeout=2",
                            "timeout=5"), mountpoint])
    assert "cannot reach the api" in r.err.lower(), r.err
    assert "refusing plain http" not in r.err.lower(), r.err
    not_mounted(mountpoint)


# ---------------------------------------------------------------------------
# Finding 3: proxies see no plain http; redirects are not followed

@pytest.mark.parametrize("var", ["http_proxy", "HTTP_PROXY", "ALL_PROXY",
                                 "all_proxy"])
def test_f3_plain_http_never_through_a_proxy(server, mounter, main_tasks,
                                              var):
    with Recorder() as proxy:
        m, err = attempt(mounter, server, extra_opts=["retries=0"],
                         env_extra={var: proxy.url})
        listed, err = attempt(list_failed, m) if m else (None, err)
        got = proxy.settle()
    assert got == b"", "with %s set, the proxy received %d bytes%s: %r" % (
        var, len(got), " holding the key" if KEY.encode() in got or
        mfs.DEFAULT_KEY.encode() in got else "", got[:400])
    assert err is None, err
    assert listed == n_failed(main_tasks)


@pytest.fixture(scope="module")
def tls(fuse_ok, workdir):
    """A TLS test server (certificate for localhost and 127.0.0.1, made
    now) expecting KEY, and a second certificate for other.example."""
    d = tempfile.mkdtemp(prefix="tls-", dir=workdir)
    t = types.SimpleNamespace(dir=d)
    t.cert, t.key = mfs.make_cert(d)
    t.other_cert, t.other_key = mfs.make_cert(d, "other.example",
                                              "DNS:other.example")
    t.server = mfs.Server(os.path.join(d, "srv"), count=TLS_COUNT,
                          seed=TLS_SEED, key=KEY, tls_cert=t.cert,
                          tls_key=t.key)
    try:  # a set-up that fails must not leave the server running
        t.failed = n_failed(t.server.dataset())
        yield t
    finally:
        t.server.stop()


def test_f3_https_proxy_sees_only_connect(tls, mounter):
    with ConnectProxy() as proxy:
        m = mounter(tls.server, key=KEY, extra_opts=["ca_file=" + tls.cert],
                    env_extra={"https_proxy": proxy.url})
        assert list_failed(m) == tls.failed
        got = proxy.data()
    assert got.startswith(b"CONNECT localhost:%d " % tls.server.port), \
        got[:200]
    assert not leaks(got, KEY), "the proxy saw the key"


def test_f3_redirect_not_followed(fuse_ok, mountpoint):
    with Recorder() as other:
        with Redirector(other.url + "/v1/tasks/list") as api:
            refused(["-o", opts(api.url, "retries=0", "timeout=10"),
                     mountpoint])
            assert api.requests >= 1, "the fake API was never asked"
        got = other.settle()
    assert got == b"", "the redirect was followed: %r" % got[:400]
    not_mounted(mountpoint)


# ---------------------------------------------------------------------------
# Finding 4: control characters in option values

@pytest.mark.parametrize("case", ["header", "smuggle", "key_file", "url"])
def test_f4_control_characters_refused(fuse_ok, mountpoint, tmp_path, case):
    with Recorder() as api:
        base = opts(api.url, "retries=0", "timeout=5")
        key, name = KEY, case
        if case == "header":
            args, name = ["-o", base, "-o",
                          "namespace=prod\r\nX-Injected: yes"], "namespace"
        elif case == "smuggle":
            args, name = ["-o", base, "-o", "namespace=prod\r\n\r\n"
                          "GET /smuggled HTTP/1.1"], "namespace"
        elif case == "key_file":
            kf = str(tmp_path / "key\nfile")
            write_key_file(kf, KEY + "\n")
            args, key = ["-o", base, "-o", "key_file=" + kf], None
        else:
            args = ["-o", opts(api.url + "/a\tb", "retries=0")]
        r = refused(args + [mountpoint], key=key)
        got = api.settle()
    assert got == b"", "a request went out: %r" % got[:600]
    low = r.err.lower()
    assert name in low and "control character" in low, r.err
    assert not leaks(r.err, KEY)
    not_mounted(mountpoint)


def test_f4_plain_namespace_sent(server, mounter, main_tasks):
    m = mounter(server, extra_opts=["namespace=prod_ns-1.a"])
    assert list_failed(m) == n_failed(main_tasks)
    log = server.log()
    assert log and all(e["namespace"] == "prod_ns-1.a" for e in log), log[:3]
    assert server.stats()["namespaces"] == ["prod_ns-1.a"]


# ---------------------------------------------------------------------------
# Finding 5: server-supplied text is escaped in the log

FORGED = "boom\nmixpeekfs: info: FORGED\x1b[31mred"


@pytest.mark.parametrize("code,err", [(500, errno.EIO), (400, errno.EINVAL)])
def test_f5_server_text_escaped_in_log(server, mounter, code, err):
    m = mounter(server, extra_opts=["retries=1"])
    server.faults(error_rate=1.0, error_status=code, error_message=FORGED)
    e = mfs.errno_of(os.listdir, m.p("by-status", "FAILED"))
    server.faults()
    assert e == err, mfs.errname(e)
    assert code in [x["status"] for x in server.log()]
    text = m.stderr()
    assert "\x1b" not in text, "raw ESC on stderr:\n%r" % text[-1000:]
    forged = [ln for ln in text.splitlines()
              if ln.startswith("mixpeekfs: info: FORGED")]
    assert not forged, "a forged log line:\n%s" % text[-1000:]
    assert "\\n" in text and "\\x1b" in text, text[-1000:]
    stats = mfs.read(m, ".mixpeekfs", "stats").decode("utf-8", "replace")
    last = [ln for ln in stats.splitlines() if ln.startswith("last_error ")]
    assert len(last) == 1 and "FORGED" in last[0], stats
    assert "\x1b" not in stats and "\nmixpeekfs: info: FORGED" not in stats, \
        stats


# ---------------------------------------------------------------------------
# Finding 6: no core dump holds the key

def core_files(d, prefix):
    """{name: (inode, mtime)} of the files in d whose name starts with
    prefix."""
    out = {}
    for name in os.listdir(d):
        if name.startswith(prefix):
            st = os.stat(os.path.join(d, name))
            out[name] = (st.st_ino, st.st_mtime_ns)
    return out


def unlimited_core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                              resource.RLIM_INFINITY))


def crash(proc, name):
    """SIGSEGV to a process once it runs ``name``; waits for it."""
    mfs.wait_until(lambda: os.readlink("/proc/%d/exe" % proc.pid)
                   .endswith(name), 30, "%s to start" % name)
    os.kill(proc.pid, signal.SIGSEGV)
    return proc.wait(60)


@pytest.mark.timeout(120)
def test_f6_crash_leaves_no_core_file(keyed, main_tasks, tmp_path):
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip("core files do not go to the working directory "
                    "(core_pattern %r)" % pattern)
    prefix = pattern.split("%")[0]
    cwd = str(tmp_path / "cwd")
    os.mkdir(cwd)
    # Control: an ordinary process leaves a core file in its directory.
    ctl = subprocess.Popen(["/bin/sleep", "30"], cwd=cwd,
                           preexec_fn=unlimited_core)
    assert crash(ctl, "sleep") == -signal.SIGSEGV
    if not core_files(cwd, prefix):
        pytest.skip("this machine writes no core file for a crash")
    m = mfs.Mount(str(tmp_path / "mnt"), keyed.url, key=KEY, cwd=cwd,
                  preexec_fn=unlimited_core)
    new = []
    try:
        assert list_failed(m) == n_failed(main_tasks)
        # The daemon may have moved (fuse_daemonize goes to "/").
        where = os.readlink("/proc/%d/cwd" % m.proc.pid)
        before = core_files(where, prefix)
        crash(m.proc, os.path.basename(mfs.mixpeekfs_bin()))
        new = [os.path.join(where, n) for n, st in
               core_files(where, prefix).items() if before.get(n) != st]
        held = 0
        for path in new:
            with open(path, "rb") as f:
                held += f.read().count(KEY.encode())
        assert not new, "the crash left %s, holding the key %d times" % (
            new, held)
    finally:
        for path in new:
            os.unlink(path)
        m.kill()
        m.cleanup()


def test_f6_systemd_unit_disables_core_dumps():
    with open(os.path.join(mfs.REPO, "contrib", "mixpeekfs@.service")) as f:
        unit = f.read()
    assert re.search(r"^LimitCORE=0\s*$", unit, re.M), unit


# ---------------------------------------------------------------------------
# Finding 7: key files

def refuse_key_file(srv, mountpoint, path, limit=10):
    """mixpeekfs refuses the key file at once, before any request."""
    r = refused(["-o", opts(srv.url, "key_file=" + path), mountpoint],
                key=None, limit=limit)
    assert not leaks(r.err + r.out, KEY), r.err
    not_mounted(mountpoint)
    assert srv.requests()["total"] == 0, "a request was made"
    return r


def test_f7_fifo_refused_at_once(keyed, mountpoint, tmp_path):
    kf = str(tmp_path / "key.fifo")
    os.mkfifo(kf, 0o600)
    r = refuse_key_file(keyed, mountpoint, kf, limit=5)
    assert "not a regular file" in r.err.lower(), r.err


def test_f7_directory_refused(keyed, mountpoint, tmp_path):
    kf = str(tmp_path / "keydir")
    os.mkdir(kf, 0o700)
    r = refuse_key_file(keyed, mountpoint, kf)
    assert "not a regular file" in r.err.lower(), r.err


@pytest.mark.parametrize("links", [1, 2])
def test_f7_symlink_followed(keyed, mounter, main_tasks, tmp_path, links):
    """Kubernetes secrets and systemd credentials are symlinks."""
    path = str(tmp_path / "real-key")
    write_key_file(path, KEY + "\n")
    for i in range(links):
        link = str(tmp_path / ("link%d" % i))
        os.symlink(path, link)
        path = link
    m = mounter(keyed, key=None, extra_opts=["key_file=" + path])
    assert list_failed(m) == n_failed(main_tasks)


def test_f7_symlink_to_readable_file_refused(keyed, mountpoint, tmp_path):
    target = str(tmp_path / "real-key")
    write_key_file(target, KEY + "\n", mode=0o644)
    link = str(tmp_path / "link")
    os.symlink(target, link)
    r = refuse_key_file(keyed, mountpoint, link)
    assert "only its owner" in r.err.lower(), r.err


def test_f7_file_of_another_user_refused(keyed, mountpoint, tmp_path):
    kf = str(tmp_path / "key")
    write_key_file(kf, KEY + "\n")
    os.chown(kf, 65534, 65534)
    r = refuse_key_file(keyed, mountpoint, kf)
    assert "owned by" in r.err.lower(), r.err


def test_f7_huge_file_refused(keyed, mountpoint, tmp_path):
    kf = str(tmp_path / "key")
    write_key_file(kf, KEY + "x" * (10 * 1024 * 1024) + "\n")
    r = refuse_key_file(keyed, mountpoint, kf)
    assert "too long" in r.err.lower(), r.err


@pytest.mark.parametrize("content,phrase", [
    (" " + KEY + "\n", "space"),
    (KEY + " \n", "space"),
    (KEY + "\t\n", "tab"),
    (KEY[:12] + "\x1b" + KEY[12:] + "\n", "control"),
    (KEY[:12] + "\0" + KEY[12:] + "\n", r"\bnul\b"),
], ids=["leading-space", "trailing-space", "trailing-tab", "esc", "nul"])
def test_f7_bad_bytes_in_key_refused(keyed, mountpoint, tmp_path, content,
                                     phrase):
    kf = str(tmp_path / "key")
    write_key_file(kf, content)
    r = refuse_key_file(keyed, mountpoint, kf)
    assert re.search(phrase, r.err.lower()), r.err


@pytest.mark.parametrize("end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_f7_one_line_end_allowed(keyed, mounter, main_tasks, tmp_path, end):
    kf = str(tmp_path / "key")
    write_key_file(kf, KEY + end)
    m = mounter(keyed, key=None, extra_opts=["key_file=" + kf])
    assert list_failed(m) == n_failed(main_tasks)


def test_f7_empty_file_says_so(keyed, mountpoint, tmp_path):
    kf = str(tmp_path / "empty-key")
    write_key_file(kf, "")
    r = refuse_key_file(keyed, mountpoint, kf)
    assert "empty" in r.err.lower() and kf in r.err, r.err
    assert "no API key: set MIXPEEK_API_KEY" not in r.err, r.err


def test_f7_space_in_environment_key_refused(keyed, mountpoint):
    r = refused(["-o", opts(keyed.url), mountpoint], key=" " + KEY, limit=5)
    assert "MIXPEEK_API_KEY" in r.err and "space" in r.err.lower(), r.err
    assert not leaks(r.err, KEY), r.err
    not_mounted(mountpoint)
    assert keyed.requests()["total"] == 0


# ---------------------------------------------------------------------------
# Finding 8: a revoked key shows no stale data and does not flood the API

def eacces(fn, *args):
    """True when fn fails with EACCES; fails the test when it succeeds
    (or fails otherwise)."""
    try:
        res = fn(*args)
    except OSError as e:
        assert e.errno == errno.EACCES, (args, mfs.errname(e.errno))
        return True
    raise AssertionError("%s succeeded after the key was rejected: %r"
                         % (args, res if not isinstance(res, list)
                            else "%d entries" % len(res)))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.timeout(150)
def test_f8_revoked_key(keyed, mounter, main_tasks):
    ttl = 2
    m = mounter(keyed, ttl=ttl, key=KEY)
    failed_dir = m.p("by-status", "FAILED")
    assert list_failed(m) == n_failed(main_tasks)
    assert keyed.set_key(WRONG)

    def refused_now():
        try:
            os.listdir(failed_dir)
        except OSError as e:
            assert e.errno == errno.EACCES, mfs.errname(e.errno)
            return True
        return False
    mfs.wait_until(refused_now, 30, "the FAILED listing to be refused "
                   "(EACCES) after the key was revoked", interval=0.2)
    t401 = min(e["time"] for e in keyed.log() if e["status"] == 401)
    # For about 8 s (by the server's clock) everything that needs the API
    # is refused, and the key is tried at most once per ttl.
    other = ids_where(main_tasks, status="PENDING")[0]
    rounds = 0
    while time.time() < t401 + 8:
        eacces(os.listdir, failed_dir)
        eacces(os.listdir, m.p("by-status", "COMPLETED"))
        eacces(read_file, m.p("tasks", other, "status"))
        rounds += 1
        time.sleep(0.1)
    t_end = time.time()
    rejected = [e for e in keyed.log() if e["status"] == 401]
    window = t_end - t401
    assert rounds >= 10, rounds
    assert len(rejected) <= window / ttl + 2, \
        "%d requests rejected in %.1fs (ttl %d)" % (len(rejected), window,
                                                    ttl)
    err = m.stderr()
    assert err.lower().count("rejected the key") == 1, err[-3000:]
    # The key is valid again: the mount recovers by itself.
    assert keyed.set_key(KEY)
    mfs.wait_until(lambda: attempt(list_failed, m)[0] == n_failed(main_tasks),
                   30, "the FAILED listing to come back", interval=0.2)
    assert "accepts the key again" in m.stderr().lower(), m.stderr()[-3000:]


# ---------------------------------------------------------------------------
# Finding 9: TLS

def test_f9_self_signed_refused_without_ca_file(tls, mountpoint):
    r = refused(["-o", opts(tls.server.url, "retries=0"), mountpoint])
    assert "self-signed" in r.err.lower() or "self signed" in r.err.lower(), \
        r.err
    assert "SSL peer certificate or SSH remote key was not OK" not in r.err
    not_mounted(mountpoint)


@pytest.mark.parametrize("how", ["ca_file", "CURL_CA_BUNDLE"])
def test_f9_private_ca_trusted(tls, mounter, how):
    if how == "ca_file":
        m = mounter(tls.server, key=KEY, extra_opts=["ca_file=" + tls.cert])
    else:
        m = mounter(tls.server, key=KEY,
                    env_extra={"CURL_CA_BUNDLE": tls.cert})
    assert list_failed(m) == tls.failed


def test_f9_missing_ca_file_refused(tls, mountpoint):
    r = refused(["-o", opts(tls.server.url, "ca_file=/nonexistent"),
                 mountpoint])
    assert "ca_file" in r.err, r.err
    not_mounted(mountpoint)


def tls_server(tls, name, **kw):
    return mfs.Server(os.path.join(tls.dir, name), count=20, seed=1,
                      key=KEY, **kw)


def test_f9_tls_1_1_refused(tls, mountpoint):
    srv = tls_server(tls, "srv-tls11", tls_cert=tls.cert, tls_key=tls.key,
                     tls_max="1.1")
    try:
        refused(["-o", opts(srv.url, "ca_file=" + tls.cert, "retries=0"),
                 mountpoint])
        not_mounted(mountpoint)
        assert srv.requests()["total"] == 0
    finally:
        srv.stop()


def test_f9_name_mismatch_refused(tls, mountpoint):
    srv = tls_server(tls, "srv-other", tls_cert=tls.other_cert,
                     tls_key=tls.other_key)
    try:
        r = refused(["-o", opts(srv.url, "ca_file=" + tls.other_cert,
                                "retries=0"), mountpoint])
        assert "match" in r.err.lower(), r.err
        not_mounted(mountpoint)
        assert srv.requests()["total"] == 0
    finally:
        srv.stop()


# ---------------------------------------------------------------------------
# Finding 10: a signal stops the daemon while a request hangs

@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_f10_signal_aborts_hung_request(server, tmp_path, sig):
    m = mfs.Mount(str(tmp_path / "mnt"), server.url, ttl=600)
    ls = None
    try:
        server.faults(hang=True)
        ls = subprocess.Popen(["ls", m.p("by-status", "FAILED")],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        mfs.wait_until(lambda: any(e["status"] is None
                                   for e in server.log()),
                       30, "the listing request to be held")
        m.proc.send_signal(sig)
        mfs.wait_until(lambda: m.proc.poll() is not None, 5,
                       "mixpeekfs to exit after %s" % sig.name)
        assert m.proc.returncode == 0, m.stderr()[-2000:]
        assert not mfs.mounted(m.path), "still mounted"
        assert ls.wait(10) != 0, "ls succeeded"
        problems = m.unmount()
        assert not problems, problems
    finally:
        server.faults()
        m.kill()    # first: a FUSE request already sent waits for it
        if ls is not None and ls.poll() is None:
            ls.kill()
            ls.wait(30)
        m.cleanup()
