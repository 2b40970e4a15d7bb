"""mount(8), fstab and mount.fuse3: mixpeekfs mounted like any filesystem.

These tests run the real chain: mount(8) -> /sbin/mount.fuse ->
/bin/sh -c 'mixpeekfs SOURCE DIR -o OPTS' -> the daemon forks and mount
returns. They need root.

mount(8) removes PATH from its helpers' environment, so mount.fuse3's shell
looks ``mixpeekfs`` up in its built-in default path, never in the build
directory. The ``helper_path`` fixture therefore puts a symlink to the binary
under test in the first directory of that path for the length of the module
(and skips when a different ``mixpeekfs`` is already there).
"""

import os
import signal
import subprocess
import time

import pytest

import mfs

FSTYPE = "fuse.mixpeekfs"
# Words for mount(8), mount.fuse3 and systemd that mixpeekfs must survive.
FSTAB_WORDS = "_netdev,nofail,x-systemd.automount"


def run(cmd, timeout=60):
    """Run a command without MIXPEEK_API_KEY; text output and .elapsed."""
    env = dict(os.environ)
    env.pop("MIXPEEK_API_KEY", None)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       env=env, timeout=timeout)
    r.elapsed = time.monotonic() - t0
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def sh_lookup():
    """What mount.fuse3's shell runs for "mixpeekfs" (no PATH set)."""
    r = run(["env", "-i", "/bin/sh", "-c", "command -v mixpeekfs"])
    return r.out.strip() or None


def sh_default_path():
    r = run(["env", "-i", "/bin/sh", "-c", 'echo "$PATH"'])
    return [d for d in r.out.strip().split(":") if d]


@pytest.fixture(scope="module")
def helper_path(fuse_ok):
    if os.geteuid() != 0:
        pytest.skip("mount(8) tests need root")
    for prog in ("/sbin/mount.fuse3", "/sbin/mount.fuse"):
        if not os.path.exists(prog):
            pytest.skip("%s is missing (package fuse3)" % prog)
    binary = os.path.realpath(mfs.mixpeekfs_bin())
    found = sh_lookup()
    if found and os.path.realpath(found) == binary:
        yield
        return
    dirs = sh_default_path()
    if not dirs:
        pytest.skip("cannot tell /bin/sh's default PATH")
    link = os.path.join(dirs[0], "mixpeekfs")
    if os.path.lexists(link):
        pytest.skip("%s exists and is not %s" % (link, binary))
    os.symlink(binary, link)
    try:
        found = sh_lookup()
        if not found or os.path.realpath(found) != binary:
            pytest.skip("/bin/sh finds %s, not %s" % (found, binary))
        yield
    finally:
        if os.path.islink(link) and os.readlink(link) == binary:
            os.unlink(link)


def daemon_pids(mnt):
    """Processes running mixpeekfs with ``mnt`` among their arguments."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"mixpeekfs" and \
                mnt.encode() in argv and alive(int(d)):
            pids.append(int(d))
    return pids


def alive(pid):
    """True unless the process is gone or a zombie nobody reaps."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def mounts_count(mnt):
    with open("/proc/mounts") as f:
        return sum(1 for line in f if line.split()[1] == mnt)


def mounts_entry(mnt):
    """The /proc/mounts fields (source, dir, type, options) for ``mnt``."""
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == mnt:
                return fields
    return None


@pytest.fixture
def mnt_dir(helper_path, tmp_path):
    path = str(tmp_path / "mnt")
    os.mkdir(path)
    yield path
    # /proc/mounts, not ismount(): a dead daemon's mount fails stat().
    for cmd in (["umount"], ["fusermount3", "-uz"]):
        for _ in range(4):  # mounts may be stacked
            if mounts_count(path):
                run(cmd + [path], timeout=30)
    for pid in daemon_pids(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def write_key(tmp_path, key=mfs.DEFAULT_KEY, mode=0o600):
    path = str(tmp_path / "key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, mode)
    return path


def mount_t(url, mnt, key_file):
    return run(["mount", "-t", FSTYPE, url, mnt, "-o",
                "key_file=%s,%s,ttl=30" % (key_file, FSTAB_WORDS)])


def write_fstab(tmp_path, line):
    fstab = str(tmp_path / "fstab")
    with open(fstab, "w") as f:
        f.write("# written by test_fstab.py\n%s\n" % line)
    return fstab


def mount_fstab(tmp_path, line, mnt):
    return run(["mount", "-T", write_fstab(tmp_path, line), mnt])


def fstab_line(form, url, mnt, key_file):
    opts = "key_file=%s,%s,ttl=30" % (key_file, FSTAB_WORDS)
    if form == "url":
        return "%s  %s  %s  %s  0 0" % (url, mnt, FSTYPE, opts)
    return "mixpeek  %s  %s  url=%s,%s  0 0" % (mnt, FSTYPE, url, opts)


def check_mount(server, mnt):
    """The mount is there, has our type and shows the server's tasks."""
    tasks = server.dataset()
    failed = [t for t in tasks if t["status"] == "FAILED"]
    other = [t for t in tasks if t["status"] != "FAILED"]
    assert failed and other
    mfs.wait_until(lambda: os.path.ismount(mnt), 30, "%s to be mounted" % mnt)
    entry = mounts_entry(mnt)
    assert entry and entry[2] == FSTYPE, entry
    r = run(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", mnt])
    assert r.returncode == 0 and r.out.strip() == FSTYPE, (r.out, r.err)
    assert len(daemon_pids(mnt)) == 1

    r = mfs.sh("ls by-status/FAILED | wc -l", mnt)
    assert int(r.out) == len(failed)
    for t in (failed[0], failed[-1], other[0]):
        r = mfs.sh("cat tasks/%s/status" % mfs.escape_name(t["task_id"]), mnt)
        assert r.out == t["status"] + "\n", t["task_id"]
    # This server answered, so SOURCE or url= reached the daemon.
    assert server.requests()["list"] >= 1


def unmount(mnt):
    pids = daemon_pids(mnt)
    r = run(["umount", mnt], timeout=30)
    assert r.returncode == 0, r.err
    mfs.wait_until(lambda: not os.path.ismount(mnt), 30,
                   "%s to be unmounted" % mnt)
    mfs.wait_until(lambda: not any(alive(p) for p in pids), 30,
                   "mixpeekfs %s to exit" % pids)
    assert mounts_entry(mnt) is None


def test_mount_t_fuse_mixpeekfs(server, mnt_dir, tmp_path):
    key_file = write_key(tmp_path)
    r = mount_t(server.url, mnt_dir, key_file)
    assert r.returncode == 0, r.err
    check_mount(server, mnt_dir)
    unmount(mnt_dir)


@pytest.mark.parametrize("form", ["url", "label"])
def test_mount_from_fstab(server, mnt_dir, tmp_path, form):
    """SOURCE is the URL, or a label with the URL in url=."""
    key_file = write_key(tmp_path)
    line = fstab_line(form, server.url, mnt_dir, key_file)
    r = mount_fstab(tmp_path, line, mnt_dir)
    assert r.returncode == 0, "%s\n%s" % (line, r.err)
    check_mount(server, mnt_dir)
    unmount(mnt_dir)


def test_key_not_in_cmdline_or_mounts(server, mnt_dir, tmp_path):
    secret = "sk_test_fstab_" + os.urandom(12).hex()
    if not server.set_key(secret):
        pytest.skip("the test server has no POST /_test/key")
    key_file = write_key(tmp_path, secret)
    m = mount_t(server.url, mnt_dir, key_file)
    assert m.returncode == 0, m.err
    assert secret not in m.out + m.err
    mfs.wait_until(lambda: os.path.ismount(mnt_dir), 30, "the mount")
    # The key works: a listing succeeds against a server expecting it.
    r = mfs.sh("ls tasks | wc -l", mnt_dir)
    assert int(r.out) == len(server.dataset())

    pids = daemon_pids(mnt_dir)
    assert len(pids) == 1, pids
    with open("/proc/%d/cmdline" % pids[0], "rb") as f:
        argv = f.read().split(b"\0")
    # the right process: mount.fuse3 passed SOURCE and key_file= through
    assert argv[1] == server.url.encode(), argv
    assert any(key_file.encode() in a for a in argv), argv
    places = ["/proc/%d/cmdline" % pids[0], "/proc/%d/environ" % pids[0],
              "/proc/mounts", "/proc/self/mountinfo"]
    if os.path.exists("/run/mount/utab"):
        places.append("/run/mount/utab")
    for place in places:
        with open(place, "rb") as f:
            data = f.read()
        assert secret.encode() not in data, place
        assert secret[8:].encode() not in data, place
    unmount(mnt_dir)


@pytest.mark.parametrize("how", ["mount-t", "fstab"])
def test_loose_key_file_fails(server, mnt_dir, tmp_path, how):
    key_file = write_key(tmp_path, mode=0o644)
    if how == "mount-t":
        r = mount_t(server.url, mnt_dir, key_file)
    else:
        line = fstab_line("url", server.url, mnt_dir, key_file)
        r = mount_fstab(tmp_path, line, mnt_dir)
    assert r.returncode != 0, "mount succeeded: %s" % r.err
    assert r.elapsed < 20, "took %.1fs to fail" % r.elapsed
    assert "key file '%s'" % key_file in r.err, r.err
    assert "chmod 600" in r.err, r.err
    assert mfs.DEFAULT_KEY not in r.out + r.err
    assert not os.path.ismount(mnt_dir)
    assert mounts_entry(mnt_dir) is None
    assert daemon_pids(mnt_dir) == []
    # refused before any request (and nofail did not hide the error)
    assert server.requests()["total"] == 0


def test_mount_a_twice_mounts_once(server, mnt_dir, tmp_path):
    key_file = write_key(tmp_path)
    fstab = write_fstab(tmp_path, fstab_line("url", server.url, mnt_dir,
                                             key_file))
    for _ in range(2):
        r = run(["mount", "-a", "-T", fstab])
        assert r.returncode == 0, r.err
        mfs.wait_until(lambda: os.path.ismount(mnt_dir), 30, "the mount")
    assert mounts_count(mnt_dir) == 1
    assert mounts_entry(mnt_dir)[0] == server.url
    unmount(mnt_dir)
