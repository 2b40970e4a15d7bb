"""Helpers for the mixpeekfs integration tests.

Everything here uses the Python standard library only. Expectations are
computed from the test server's data (``dataset.generate()`` or
``GET /_test/dataset``), never from what the filesystem shows.
"""

import errno
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVER_DIR = os.path.join(REPO, "tests", "server")
SERVER_SCRIPT = os.path.join(SERVER_DIR, "mixpeek_server.py")
DEFAULT_KEY = "sk_test_mixpeekfs"

# Markers that make a daemon's stderr a test failure.
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error", "LeakSanitizer",
                     "ThreadSanitizer",
                     "Segmentation")


def mixpeekfs_bin():
    return os.environ.get("MIXPEEKFS_BIN",
                          os.path.join(REPO, "build", "src", "mixpeekfs"))


def fuse_unavailable_reason():
    """Why FUSE tests cannot run here, or None when they can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible"
    return None


def import_dataset():
    if SERVER_DIR not in sys.path:
        sys.path.insert(0, SERVER_DIR)
    import dataset  # noqa: E402  (tests/server/dataset.py)
    return dataset


# ---------------------------------------------------------------------------
# Deadlines and polling

def wait_until(pred, timeout, what, interval=0.02, alive=None):
    """Poll ``pred`` until it returns a true value; fail after ``timeout``.

    ``alive`` is an optional callable returning an error text when the thing
    we wait for died (then we stop waiting at once).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if alive is not None:
            err = alive()
            if err:
                raise AssertionError("while waiting for %s: %s" % (what, err))
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# Name escaping and FNV-1a-64 (the filesystem's naming rule)

FNV64_OFFSET = 0xcbf29ce484222325
FNV64_PRIME = 0x100000001b3


def fnv1a64(data):
    h = FNV64_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


# the hidden files a task id or key would collide with (names.c)
RESERVED_NAMES = (".jsonl", ".tsv", ".refresh", ".wait")


def escape_name(raw):
    """The directory entry name for a JSON key or a task id (str)."""
    raw_bytes = raw.encode("utf-8", "surrogatepass")
    if raw == "":
        return "%00"
    if raw == ".":
        return "%2E"
    if raw == "..":
        return "%2E%2E"
    if raw in RESERVED_NAMES:
        return "%2E" + raw[1:]
    # Escape unit by unit, so that truncation can respect unit boundaries.
    units = []
    for ch in raw:
        if ch == "%":
            units.append(b"%25")
        elif ch == "/":
            units.append(b"%2F")
        else:
            units.append(ch.encode("utf-8", "surrogatepass"))
    escaped = b"".join(units)
    if len(escaped) <= 255:
        return escaped.decode("utf-8", "surrogatepass")
    prefix = b""
    for u in units:
        if len(prefix) + len(u) > 200:
            break
        prefix += u
    out = prefix + b"%~" + ("%016x" % fnv1a64(raw_bytes)).encode()
    return out.decode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------
# Expected tree of a task

class ExpFile(object):
    """Expected file content: a list of parts, each ``str`` or ``float``.

    Floats are matched by value and must be written in a shortest
    round-trip form (so ``0.75``, never ``0.75000000000000000``).
    """

    def __init__(self, parts):
        self.parts = parts

    def has_float(self):
        return any(isinstance(p, float) for p in self.parts)

    def canonical(self):
        return "".join(repr(p) if isinstance(p, float) else p
                       for p in self.parts).encode("utf-8", "surrogatepass")

    def matches(self, data):
        if data == self.canonical():
            return True
        if not self.has_float():
            return False
        pattern = b""
        for p in self.parts:
            if isinstance(p, float):
                pattern += rb"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
            else:
                pattern += re.escape(p.encode("utf-8", "surrogatepass"))
        m = re.fullmatch(pattern, data, re.S)
        if not m:
            return False
        floats = [p for p in self.parts if isinstance(p, float)]
        for text, value in zip(m.groups(), floats):
            if not float_text_ok(text.decode(), value):
                return False
        return True

    def __repr__(self):
        return "ExpFile(%r)" % (self.canonical(),)


def _sig_digits(text):
    mant = re.split(r"[eE]", text)[0].lstrip("-").replace(".", "")
    mant = mant.lstrip("0").rstrip("0")
    return len(mant) or 1


def float_text_ok(text, value):
    try:
        if float(text) != value:
            return False
    except ValueError:
        return False
    return _sig_digits(text) <= _sig_digits(repr(value))


def scalar_parts(v):
    """Parts of one scalar rendered as text (without the newline)."""
    if v is None:
        return [""]
    if v is True:
        return ["true"]
    if v is False:
        return ["false"]
    if isinstance(v, int):
        return [str(v)]
    if isinstance(v, float):
        return [v]
    if isinstance(v, str):
        return [v]
    raise TypeError("not a scalar: %r" % (v,))


def expected_node(value):
    """ExpFile, dict (folder), or None (no entry) for one JSON value."""
    if value is None:
        return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            node = expected_node(v)
            if node is not None:
                out[escape_name(k)] = node
        return out
    if isinstance(value, list):
        if any(isinstance(e, (dict, list)) for e in value):
            out = {}
            for i, e in enumerate(value):
                node = expected_node(e)
                if node is not None:
                    out[str(i)] = node
            return out
        parts = []
        for e in value:
            parts.extend(scalar_parts(e))
            parts.append("\n")
        return ExpFile(parts)
    return ExpFile(scalar_parts(value) + ["\n"])


def expected_task_tree(task):
    """The expected folder of one task (without ``task.json``)."""
    tree = expected_node(task)
    assert isinstance(tree, dict)
    return tree


def read_tree(path):
    """Read a directory tree from the mount: dict name -> bytes | dict.

    Also checks, for every node, that st_size equals the bytes read and
    that file/folder types are consistent. Returns (tree, problems).
    """
    problems = []

    def walk(p):
        out = {}
        for name in os.listdir(p):
            full = os.path.join(p, name)
            st = os.lstat(full)
            if _is_dir(st):
                out[name] = walk(full)
            elif _is_reg(st):
                with open(full, "rb") as f:
                    data = f.read()
                if st.st_size != len(data):
                    problems.append("%s: st_size %d but %d bytes read"
                                    % (full, st.st_size, len(data)))
                out[name] = data
            else:
                problems.append("%s: unexpected file type %o"
                                % (full, st.st_mode))
        return out

    return walk(path), problems


def _is_dir(st):
    import stat as _stat
    return _stat.S_ISDIR(st.st_mode)


def _is_reg(st):
    import stat as _stat
    return _stat.S_ISREG(st.st_mode)


def compare_tree(expected, actual, where=""):
    """Differences between an expected tree and one read from the mount."""
    diffs = []
    exp_names = set(expected)
    act_names = set(actual)
    for name in sorted(exp_names - act_names):
        diffs.append("%s/%s: missing" % (where, name))
    for name in sorted(act_names - exp_names):
        diffs.append("%s/%s: unexpected entry" % (where, name))
    for name in sorted(exp_names & act_names):
        e = expected[name]
        a = actual[name]
        path = "%s/%s" % (where, name)
        if isinstance(e, dict):
            if not isinstance(a, dict):
                diffs.append("%s: expected a folder, got a file %r"
                             % (path, a[:80]))
            else:
                diffs.extend(compare_tree(e, a, path))
        else:
            if isinstance(a, dict):
                diffs.append("%s: expected a file %r, got a folder"
                             % (path, e))
            elif not e.matches(a):
                diffs.append("%s: expected %r, got %r"
                             % (path, e.canonical()[:300], a[:300]))
    return diffs


# ---------------------------------------------------------------------------
# Test server

def http(method, url, body=None, headers=None, timeout=30, context=None):
    """(status, parsed-JSON-or-bytes) for one HTTP request (``context``:
    an ssl.SSLContext for https)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout,
                                    context=context) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw.decode())
    except ValueError:
        return status, raw


def make_cert(directory, cn="localhost",
              san="DNS:localhost,IP:127.0.0.1"):
    """A self-signed certificate (its own CA) and key made now with
    openssl req -x509: (cert_path, key_path)."""
    return server_module().make_cert(directory, cn, san)


def server_module():
    """tests/server/mixpeek_server.py, imported."""
    if SERVER_DIR not in sys.path:
        sys.path.insert(0, SERVER_DIR)
    import mixpeek_server  # noqa: E402
    return mixpeek_server


class Server(object):
    """The Python test double of the Mixpeek API, run as a subprocess.

    With tls_cert and tls_key it serves HTTPS (tls_max caps the protocol:
    "1.1", "1.2" or "1.3") and url is https://localhost:PORT; the control
    endpoints are then used without checking the certificate.

    rate_per_minute, burst and max_in_flight (None: the server's default,
    no limit) and ratelimit_headers=False are its --rate-per-minute,
    --burst, --max-in-flight and --no-ratelimit-headers: Mixpeek's rate
    limits (see "Rate limits" in mixpeek_server.py); limits() changes
    them while it runs, reset(limits=True) restores these.

    Its tasks have the seven keys of the published schema; extra_keys
    adds the project's description, created_at and updated_at
    (--extra-keys), which most tests' data sets have."""

    def __init__(self, workdir, count, seed, latency_ms=None, weird=False,
                 no_timestamps=False, extra_keys=False, key=DEFAULT_KEY,
                 port=0,
                 tls_cert=None, tls_key=None, tls_max=None,
                 rate_per_minute=None, burst=None, max_in_flight=None,
                 ratelimit_headers=True):
        self.count = count
        self.seed = seed
        self.key = key
        self.weird = weird
        os.makedirs(workdir, exist_ok=True)
        self.port_file = os.path.join(workdir, "port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(workdir, "server.log")
        cmd = [sys.executable, SERVER_SCRIPT, "--count", str(count),
               "--seed", str(seed), "--port", str(port),
               "--port-file", self.port_file]
        if latency_ms is not None:
            cmd += ["--latency-ms", str(latency_ms)]
        if weird:
            cmd.append("--weird")
        if extra_keys:
            cmd.append("--extra-keys")
        if no_timestamps:
            cmd.append("--no-timestamps")
        if rate_per_minute is not None:
            cmd += ["--rate-per-minute", str(rate_per_minute)]
        if burst is not None:
            cmd += ["--burst", str(burst)]
        if max_in_flight is not None:
            cmd += ["--max-in-flight", str(max_in_flight)]
        if not ratelimit_headers:
            cmd.append("--no-ratelimit-headers")
        self._ctx = None
        if tls_cert:
            cmd += ["--tls-cert", tls_cert, "--tls-key", tls_key]
            if tls_max:
                cmd += ["--tls-max", tls_max]
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._ctx.check_hostname = False
            self._ctx.verify_mode = ssl.CERT_NONE
            if tls_max == "1.1":
                server_module().allow_old_tls(self._ctx)
        env = dict(os.environ)
        env["MIXPEEK_SERVER_KEY"] = key
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        try:
            self.port = wait_until(self._read_port, 120,
                                   "the test server's port file",
                                   alive=self._died)
            wait_until(self._connectable, 60, "the test server to accept",
                       alive=self._died)
        except BaseException:
            self.stop()
            raise
        if tls_cert:
            self.url = "https://localhost:%d" % self.port
        else:
            self.url = "http://127.0.0.1:%d" % self.port

    def _died(self):
        rc = self.proc.poll()
        if rc is None:
            return None
        return "test server exited with %s; log:\n%s" % (rc, self.output())

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def _read_port(self):
        try:
            with open(self.port_file) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _connectable(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    # control endpoints -------------------------------------------------
    def ctl(self, method, path, body=None):
        status, data = http(method, self.url + path, body,
                            context=self._ctx)
        assert status == 200, "%s %s -> %s %r" % (method, path, status, data)
        return data

    def stats(self):
        return self.ctl("GET", "/_test/stats")

    def requests(self):
        """Counts of /v1 requests so far: dict list/get/delete/other/total."""
        return dict(self.stats()["requests"])

    def log(self):
        return self.ctl("GET", "/_test/log")

    def reset(self, dataset=False, faults=False, limits=False):
        """Clear stats and log; optionally restore tasks, faults and the
        limits given at start (which refills every rate-limit bucket)."""
        self.ctl("POST", "/_test/reset", {"dataset": dataset,
                                          "faults": faults,
                                          "limits": limits})

    def dataset(self):
        data = self.ctl("GET", "/_test/dataset")
        if isinstance(data, dict):
            for k in ("tasks", "results", "dataset"):
                if k in data:
                    return data[k]
        return data

    def update_task(self, task_id, fields):
        from urllib.parse import quote
        return self.ctl("POST", "/_test/tasks/" + quote(task_id, safe=""),
                        fields)

    def put_tasks(self, tasks):
        """Add or replace many tasks in one PUT /_test/tasks (a JSON
        array; each needs a string task_id); returns the server's
        {"added": n, "replaced": m}."""
        status, data = http("PUT", self.url + "/_test/tasks", list(tasks),
                            timeout=120, context=self._ctx)
        assert status == 200, "PUT /_test/tasks -> %s %r" % (
            status, data if not isinstance(data, bytes) else data[:500])
        return data

    def put_exact(self, text):
        """PUT one task as this very text (?exact=1: served byte for byte,
        so its numbers and escapes keep their spelling)."""
        req = urllib.request.Request(
            self.url + "/_test/tasks?exact=1", data=text.encode(),
            method="PUT", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30,
                                    context=self._ctx) as resp:
            assert resp.status in (200, 201), resp.status

    def faults(self, **cfg):
        return self.ctl("POST", "/_test/faults", cfg)

    def limits(self, **cfg):
        """Replace the rate limits (rate_per_minute, burst, max_in_flight,
        headers; the others take their defaults: no limits, headers on)
        and refill every bucket; returns the new config."""
        return self.ctl("POST", "/_test/limits", cfg)

    def set_key(self, key):
        """Change the key the server expects; False when unsupported."""
        status, data = http("POST", self.url + "/_test/key", {"key": key},
                            context=self._ctx)
        if status == 404:
            return False
        assert status == 200, "POST /_test/key -> %s %r" % (status, data)
        self.key = key
        return True


def request_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0)
            for k in ("list", "get", "delete", "other", "total")}


# ---------------------------------------------------------------------------
# Mounts

class Mount(object):
    """One mixpeekfs process mounted in the foreground (-f)."""

    def __init__(self, mountpoint, url, key=DEFAULT_KEY, page_size=100,
                 ttl=600, extra_opts=(), key_in_env=True, stderr_path=None,
                 env_extra=None, cwd=None, preexec_fn=None, extra_args=()):
        """env_extra: variables to set for the daemon only; extra_args:
        more command line arguments (before the mountpoint)."""
        self.path = mountpoint
        os.makedirs(mountpoint, exist_ok=True)
        self.stderr_path = stderr_path or (mountpoint.rstrip("/") +
                                           ".stderr")
        opts = ["url=" + url]
        if page_size is not None:
            opts.append("page_size=%d" % page_size)
        if ttl is not None:
            opts.append("ttl=%d" % ttl)
        opts.extend(extra_opts)
        self.cmd = [mixpeekfs_bin(), "-f"] + list(extra_args) + \
            ["-o", ",".join(opts), mountpoint]
        env = dict(os.environ)
        env.pop("MIXPEEK_API_KEY", None)
        if key_in_env and key is not None:
            env["MIXPEEK_API_KEY"] = key
        env.update(env_extra or {})
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err,
                                     env=env, start_new_session=True,
                                     cwd=cwd, preexec_fn=preexec_fn)
        self.unmounted = False
        try:
            wait_until(lambda: os.path.ismount(mountpoint), 30,
                       "mixpeekfs to mount %s" % mountpoint,
                       alive=self._died)
        except BaseException:
            self.cleanup()
            raise

    def _died(self):
        rc = self.proc.poll()
        if rc is None:
            return None
        return "mixpeekfs exited with %s before mounting; stderr:\n%s" % (
            rc, self.stderr())

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def unmount(self):
        """Unmount cleanly; return a list of problems (empty when fine)."""
        problems = []
        if self.unmounted:
            return problems
        self.unmounted = True
        if os.path.ismount(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path],
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                problems.append("fusermount3 -u failed (%d): %s" % (
                    r.returncode, r.stderr.decode(errors="replace")))
        try:
            rc = self.proc.wait(20)
            if rc != 0:
                problems.append("mixpeekfs exited with %d after unmount"
                                % rc)
        except subprocess.TimeoutExpired:
            problems.append("mixpeekfs did not exit within 20s of unmount"
                            + self.threads())
        self.cleanup()
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                problems.append("daemon stderr contains %r:\n%s"
                                % (marker, err[-6000:]))
                break
        return problems

    def threads(self):
        """Where the daemon's threads are (for a daemon that does not
        exit): gdb's backtraces when gdb is there, else each thread's
        kernel wait channel."""
        pid = self.proc.pid
        if shutil.which("gdb"):
            r = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex",
                                "thread apply all bt 12"],
                               capture_output=True, timeout=60)
            return "; its threads:\n" + r.stdout.decode(
                "utf-8", "replace")[-12000:]
        out = []
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                base = "/proc/%d/task/%s/" % (pid, tid)
                with open(base + "comm") as f, open(base + "wchan") as g:
                    out.append("%s %s %s" % (tid, f.read().strip(),
                                             g.read().strip()))
        except OSError:
            pass
        return "; its threads: " + ", ".join(out)

    def kill(self):
        """Emergency stop: kill the daemon, lazily unmount."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["fusermount3", "-uz", self.path],
                       capture_output=True, timeout=30)

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-uz", self.path],
                           capture_output=True, timeout=30)
        if not self._err.closed:
            self._err.close()


def run_mixpeekfs(args, key=DEFAULT_KEY, timeout=30, env_extra=None):
    """Run the binary (not as a mount we keep); returns CompletedProcess."""
    env = dict(os.environ)
    env.pop("MIXPEEK_API_KEY", None)
    if key is not None:
        env["MIXPEEK_API_KEY"] = key
    if env_extra:
        env.update(env_extra)
    return subprocess.run([mixpeekfs_bin()] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          env=env, timeout=timeout)


def run_fail(args, key=DEFAULT_KEY, limit=20, env_extra=None):
    """Run the binary and check that it fails within limit seconds, with a
    message; returns the CompletedProcess with .out, .err and .elapsed."""
    t0 = time.monotonic()
    r = run_mixpeekfs(args, key=key, timeout=60, env_extra=env_extra)
    r.elapsed = time.monotonic() - t0
    r.err = r.stderr.decode("utf-8", "replace")
    r.out = r.stdout.decode("utf-8", "replace")
    assert r.returncode != 0, "exited 0; stderr: %s" % r.err
    assert r.elapsed < limit, "took %.1fs to fail" % r.elapsed
    assert r.err.strip(), "no message on stderr"
    return r


def sh(cmd, cwd, timeout=120, check=True):
    """Run a shell command line (bash) in ``cwd``; returns CompletedProcess.

    Output is decoded as UTF-8 (surrogateescape for odd bytes).
    """
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True,
                       timeout=timeout, env=dict(os.environ, LC_ALL="C.UTF-8"))
    r.out = r.stdout.decode("utf-8", "surrogateescape")
    r.err = r.stderr.decode("utf-8", "surrogateescape")
    if check and r.returncode != 0:
        raise AssertionError("command %r failed (%d): %s" % (
            cmd, r.returncode, r.err[-2000:]))
    return r


def lines(text):
    return [l for l in text.split("\n") if l != ""]


def pages(n, page_size):
    return max(1, int(math.ceil(n / float(page_size))))


class Watchdog(object):
    """Kills registered mounts when a test overruns its hard time limit."""

    def __init__(self, seconds, mounts):
        self.fired = False
        self._mounts = mounts
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        self.fired = True
        for m in list(self._mounts):
            try:
                m.kill()
            except Exception:
                pass

    def cancel(self):
        self._timer.cancel()


def mounted(path):
    """Whether path is a mount point per /proc/self/mountinfo. Unlike
    os.path.ismount, also true for a dead FUSE mount (whose stat fails)."""
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    # the kernel writes a space as \040, a backslash as \134, ...
    return any(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                      p) == path for p in points)


def errno_of(fn, *args, **kw):
    """The errno an OS call fails with, or None when it succeeds."""
    try:
        res = fn(*args, **kw)
        if hasattr(res, "close"):
            res.close()
    except OSError as e:
        return e.errno
    return None



# ---------------------------------------------------------------------------
# Request log entries

def query_of(entry):
    """The query parameters of a /_test/log entry as a dict of strings."""
    from urllib.parse import parse_qs
    q = entry.get("query")
    if q is None:
        path = entry.get("path", "")
        q = path.split("?", 1)[1] if "?" in path else ""
    if isinstance(q, dict):
        out = {}
        for k, v in q.items():
            if isinstance(v, list):
                v = v[-1] if v else ""
            out[k] = "" if v is None else str(v)
        return out
    if isinstance(q, str):
        return {k: v[-1] for k, v in parse_qs(q.lstrip("?"),
                                               keep_blank_values=True).items()}
    raise AssertionError("unexpected query in log entry: %r" % (entry,))


def path_of(entry):
    return entry.get("path", "").split("?", 1)[0]


def body_of(entry):
    b = entry.get("body")
    if isinstance(b, (bytes, str)):
        b = b.strip()
        if not b:
            return None
        return json.loads(b)
    return b


def list_entries(log):
    return [e for e in log if e.get("method") == "POST"
            and path_of(e) == "/v1/tasks/list"]


def in_filter_ids(body):
    """The ids a list request body asks for by a task_id `in` condition
    (the polls of .wait, and GETs merged into one request)."""
    ids = []
    filters = (body or {}).get("filters") or {}
    for c in filters.get("AND") or []:
        if isinstance(c, dict) and c.get("field") == "task_id" and \
                c.get("operator") == "in":
            ids.extend(c.get("value") or [])
    return ids


def asked_for(log, task_id):
    """The requests of a log that asked for one task by its id, oldest
    first: its GET, or a list request with it in a task_id `in` filter."""
    from urllib.parse import quote
    path = "/v1/tasks/" + quote(task_id, safe="")
    return [e for e in log
            if (e.get("method") == "GET" and path_of(e) == path) or
            (e in list_entries([e]) and
             task_id in in_filter_ids(body_of(e)))]


def get_entries(log):
    """Every GET under /v1 (a bad id may have been sent elsewhere)."""
    return [e for e in log if e.get("method") == "GET"
            and path_of(e).startswith("/v1/")]


# ---------------------------------------------------------------------------
# Small helpers shared by the tests

def ids_where(tasks, **match):
    """The ids of the tasks whose fields equal match."""
    return [t["task_id"] for t in tasks
            if all(t.get(k) == v for k, v in match.items())]


def names(ids):
    """Sorted directory entry names of task ids."""
    return sorted(escape_name(i) for i in ids)


def read(m, *parts):
    with open(m.p(*parts), "rb") as f:
        return f.read()


def errname(e):
    return errno.errorcode.get(e, e) if e is not None else "no error"


# ---------------------------------------------------------------------------
# Time and request budgets (test_daily.py, test_requests.py)
#
# The daemon keeps times in whole seconds of time(2), whose clock may lag
# time.time() by one tick: what it stored at T is stale from
# floor(T) + ttl on. The server's log "time" of a reply is taken just
# before the reply is sent, so the daemon stores what it got later.

CLOCK_SLACK = 0.05


def wait_past_ttl(ttl, fetched_by, answered=None):
    """Poll until what the daemon stored by fetched_by (a time.time() taken
    after the step that fetched it returned) is past its ttl, and at least
    ttl has passed since answered (the server's reply time, if given)."""
    until = max(math.floor(fetched_by) + ttl,
                (answered or 0) + ttl) + CLOCK_SLACK
    wait_until(lambda: time.time() >= until, ttl + 60,
               "the ttl of what was fetched by %.2f to run out" % fetched_by)


def last_answer(entries):
    """The server's reply time of the last of some log entries."""
    times = [e["time"] for e in entries]
    assert times and None not in times, entries
    return max(times)


def fresh_until(entries, ttl):
    """Until when (time.time()) what the daemon stored from the replies of
    some log entries is surely still fresh: it stored it after the first
    of them was answered, in whole seconds."""
    times = [e["time"] for e in entries]
    assert times and None not in times, entries
    return math.floor(min(times) - CLOCK_SLACK) + ttl


def refetched_within_ttl(entries, ttl):
    """(path, t1, t2) for requests of one path whose replies came too close
    for the second to be due: sent before the first reply's data, stored
    in whole seconds, could have been ttl old."""
    by_path = {}
    for e in entries:
        assert e.get("time") is not None, e
        by_path.setdefault(path_of(e), []).append(e["time"])
    bad = []
    for path, times in sorted(by_path.items()):
        times.sort()
        for t1, t2 in zip(times, times[1:]):
            if t2 < math.floor(t1 - CLOCK_SLACK) + ttl:
                bad.append((path, t1, t2))
    return bad


def get_counts(log):
    """How many GETs each /v1 path had, percent-decoded (task_path): dict
    path -> count."""
    from urllib.parse import unquote
    counts = {}
    for e in get_entries(log):
        path = unquote(path_of(e))
        counts[path] = counts.get(path, 0) + 1
    return counts


def task_path(task_id):
    """The API path of one task, decoded (as get_counts has it)."""
    return "/v1/tasks/" + task_id


def none_due_until(log, ttl):
    """Until when no GET of the log can be due again (0: no GET yet)."""
    times = [e["time"] for e in get_entries(log)]
    if not times:
        return 0
    return math.floor(min(times) - CLOCK_SLACK) + ttl


def assert_gets_due(log, ttl, task_ids, quick_until):
    """Name lookups' budget: no list request; GETs only of task_ids, none
    within one ttl of another of the same task, and each exactly once if
    it all happened before quick_until (none_due_until: then none could be
    due twice). Returns the counts (get_counts)."""
    lists = list_entries(log)
    assert lists == [], "a name lookup fetched a listing: %r" % lists[:3]
    counts = get_counts(log)
    expected = set(task_path(i) for i in task_ids)
    assert set(counts) == expected, (counts, expected)
    early = refetched_within_ttl(get_entries(log), ttl)
    assert early == [], "asked again within the ttl: %r" % early
    if time.time() < quick_until:
        assert counts == dict.fromkeys(expected, 1), counts
    return counts


def plain_ids(ids):
    """The ids whose entry name is the id itself and no query component."""
    return [i for i in ids if escape_name(i) == i and ":" not in i
            and "=" not in i and not i.startswith("@")]


def listed_then_stale(server, m, ttl, *folders):
    """ls each folder of mount m (its listing is fetched), then wait until
    those listings and the active tasks in them are past ttl; the server's
    stats and log are then reset. Returns {folder: sorted entries}."""
    server.reset()
    got = {f: sorted(os.listdir(m.p(f))) for f in folders}
    done = time.time()
    entries = list_entries(server.log())
    assert entries, "the listings cost no request: %r" % (folders,)
    wait_past_ttl(ttl, done, last_answer(entries))
    server.reset()
    return got


def put_task(server, task):
    """Add a task to the server (PUT /_test/tasks); it must be new."""
    status, data = http("PUT", server.url + "/_test/tasks", task,
                        context=server._ctx)
    assert status == 201, "PUT /_test/tasks -> %s %r" % (status, data)
    return data


def source_tree():
    """The source tree the binary under test was built from (meson's
    build/meson-info), else this checkout."""
    info = os.path.join(os.path.dirname(os.path.dirname(mixpeekfs_bin())),
                        "meson-info", "meson-info.json")
    try:
        with open(info) as f:
            return json.load(f)["directories"]["source"]
    except (OSError, ValueError, KeyError):
        return REPO
