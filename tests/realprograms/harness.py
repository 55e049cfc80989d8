"""Processes for the real-programs suite: the broker, programs under the
legacy-kernel runner with the shim (emulated) or on this kernel's own
SO_REUSEPORT (native), and bounded waits for conditions.

Every wait is for a condition (a file, a port that answers, the broker's own
count of members, a set of processes) with a deadline; nothing sleeps and
hopes.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

EMULATED = "emulated"
NATIVE = "native"
KERNEL = "3.2"


class ScenarioError(Exception):
    pass


def wait_until(what, condition, timeout=15.0, interval=0.01):
    """Calls condition() until it returns something true; raises after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ScenarioError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_answers(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def free_port():
    """A port free for TCP and UDP on 127.0.0.1 below the ephemeral range."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except OSError:
        pass
    rng = __import__("random").Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(200):
        port = rng.randrange(10000, max(low, 11000))
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise ScenarioError("no free port")


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def children(pid):
    """Pids whose parent is pid, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def catches(pid, signo):
    """True once pid has a handler for signo (a signal sent earlier may be lost)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signo - 1) & 1)
    except OSError:
        pass
    return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class Broker:
    """reuseportd under the runner, on <dir>/reuseportd.sock."""

    def __init__(self, build, workdir):
        self.build = build
        self.dir = workdir
        self.socket = os.path.join(workdir, "reuseportd.sock")
        self.log = os.path.join(workdir, "reuseportd.log")
        self.proc = None

    def start(self, takeover=False):
        r, w = os.pipe()
        argv = [self.build.runner, "--kernel", KERNEL, "--", self.build.broker, "--socket", self.socket,
                "--ready_fd", str(w), "--log_level", "info"]
        if takeover:
            argv.append("--takeover")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REUSEPORT_") and k != "LD_PRELOAD"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         pass_fds=(w,), start_new_session=True)
        os.close(w)
        ready = b""
        deadline = time.monotonic() + 15
        while b"READY=1" not in ready and time.monotonic() < deadline:
            rl, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not rl:
                break
            chunk = os.read(r, 64)
            if not chunk:
                break
            ready += chunk
        os.close(r)
        if b"READY=1" not in ready:
            raise ScenarioError("reuseportd did not become ready")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def status(self):
        out = subprocess.run([self.build.ctl, "--socket", self.socket, "status", "--json"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)

    def status_text(self):
        out = subprocess.run([self.build.ctl, "--socket", self.socket, "status"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout + out.stderr

    def members(self):
        doc = self.status()
        if doc is None:
            return -1
        return sum(len(g["members"]) for g in doc["groups"])

    def wait_for_members(self, count, timeout=20.0):
        wait_until(f"{count} members in the broker", lambda: self.members() == count, timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Build:
    def __init__(self, build_dir):
        self.dir = build_dir
        self.runner = os.path.join(build_dir, "tools/legacy_kernel/reuseport-legacy-kernel")
        self.broker = os.path.join(build_dir, "broker/reuseportd")
        self.ctl = os.path.join(build_dir, "tools/ctl/reuseportctl")
        self.run = os.path.join(build_dir, "tools/run/reuseport-run")
        self.shim = os.path.join(build_dir, "shim/libreuseport.so")


# The runner execs the command, so a program's pid is its Popen's; the runner's
# uname supervisor runs apart and leaves when no process of the command is left.
class World:
    """One run of a scenario in one mode: a directory, maybe a broker, and
    every process started, all ended when the run is over."""

    def __init__(self, build, mode):
        self.build = build
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix=f"reuseport-rp-{mode}-")
        os.chmod(self.dir, 0o755)
        self.broker = Broker(build, self.dir) if mode == EMULATED else None
        self.procs = []
        self.extra_pids = []  # daemons that are nobody's child here

    def __enter__(self):
        if self.broker:
            self.broker.start()
        return self

    def __exit__(self, *exc):
        # Daemons (nginx `daemon on`) lead sessions of their own, workers included.
        for pid in self.extra_pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait(10)
        if self.broker:
            self.broker.kill()
        if os.environ.get("REUSEPORT_TEST_KEEP_TEMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def path(self, name):
        return os.path.join(self.dir, name)

    def argv(self, argv, ports=None):
        """argv as this mode runs it."""
        if self.mode == NATIVE:
            return list(argv)
        if ports:
            return [self.build.runner, "--kernel", KERNEL, "--", self.build.run, "--socket", self.broker.socket,
                    "--ports", ports, "--"] + list(argv)
        return [self.build.runner, "--kernel", KERNEL, "--"] + list(argv)

    def env(self, ports=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("REUSEPORT_") and k != "LD_PRELOAD"}
        if self.mode == EMULATED and not ports:
            env["LD_PRELOAD"] = self.build.shim
            env["REUSEPORT_SOCKET"] = self.broker.socket
        return env

    def start(self, argv, name, ports=None, cwd=None):
        log = open(self.path(name + ".log"), "ab")
        p = subprocess.Popen(self.argv(argv, ports), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=self.env(ports), cwd=cwd or self.dir, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def log(self, name):
        try:
            with open(self.path(name + ".log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def member_ids(self):
        """Emulated: the ids of the broker's members (None natively)."""
        if not self.broker:
            return None
        doc = self.broker.status() or {"groups": []}
        return sorted(m["id"] for g in doc["groups"] for m in g["members"])

    def wait_members(self, count, timeout=20.0):
        """Emulated: the broker counts `count` members. Native: nothing to ask."""
        if self.broker:
            self.broker.wait_for_members(count, timeout)
