"""nginx 1.22 (Debian's nginx-light) with `listen ... reuseport`: reloads,
worker count changes, binary upgrades, daemon on and off, and the broker
restarted or handed off around them."""
import os
import signal

from harness import ScenarioError, children, ipv6_loopback, port_answers, read_pid, wait_until
from load import Load, http_get

NGINX = "/usr/sbin/nginx"


def write_config(world, port, workers, daemon=False, env_lines=False, ipv6=False):
    d = world.dir
    lines = [
        f"daemon {'on' if daemon else 'off'};",
        "master_process on;",
        f"worker_processes {workers};",
        "user root;",
        f"pid {d}/nginx.pid;",
        f"error_log {d}/error.log info;",
    ]
    if env_lines:
        lines += ["env LD_PRELOAD;", "env REUSEPORT_SOCKET;", "env REUSEPORT_MODE;"]
    lines += [
        "events { worker_connections 512; }",
        "http {",
        "  access_log off;",
        f"  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;",
        f"  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;",
        "  server {",
        f"    listen 127.0.0.1:{port} reuseport;",
    ]
    if ipv6:
        lines.append(f"    listen [::1]:{port} reuseport;")
    lines += ["    location / { return 200 \"$pid\\n\"; }", "  }", "}"]
    with open(world.path("nginx.conf"), "w") as f:
        f.write("\n".join(lines) + "\n")


class Nginx:
    def __init__(self, world, port, workers, daemon=False, env_lines=False, ipv6=False):
        self.world = world
        self.port = port
        self.workers = workers
        self.daemon = daemon
        self.ipv6 = ipv6
        write_config(world, port, workers, daemon, env_lines, ipv6)
        self.pid_file = world.path("nginx.pid")

    def start(self):
        self.proc = self.world.start([NGINX, "-c", self.world.path("nginx.conf"), "-p", self.world.dir], "nginx")
        master = wait_until("nginx's pid file", lambda: read_pid(self.pid_file), 20)
        self.world.extra_pids.append(master)
        self.wait_workers(self.workers)
        if not self.world.broker:
            # Natively, ask the port. Emulated, the broker's members are the
            # readiness, and no request may reach a worker before the scenario
            # starts (a worker that has accepted once is not idle any more).
            wait_until("nginx answering", lambda: port_answers(self.port), 20)
        return self

    def master(self):
        return read_pid(self.pid_file)

    def wait_workers(self, count, old=()):
        """Until the master has exactly `count` workers, none of them in `old`."""
        def settled():
            kids = children(self.master())
            return len(kids) == count and not set(kids) & set(old)
        wait_until(f"nginx with {count} new workers", settled, 30)
        # Emulated: each worker holds one member of each listen line.
        members = count * (2 if self.ipv6 else 1)
        self.world.wait_members(members, 30)

    def reload(self, workers=None):
        if workers is not None and workers != self.workers:
            self.workers = workers
            write_config(self.world, self.port, workers, self.daemon, ipv6=self.ipv6)
        old = children(self.master())
        os.kill(self.master(), signal.SIGHUP)
        self.wait_workers(self.workers, old)

    def errors(self):
        return self.world.log("nginx") + open(self.world.path("error.log"), errors="replace").read()[-2000:]


def run_with_load(world, nginx, action, before=100, after=100):
    """Load during `action`: `before` requests first, `after` after it."""
    load = Load(http_get(nginx.port), concurrency=4, limit=5000).start()
    load.wait_for(before)
    action()
    done = load.sent + after
    load.wait_for(done)
    load.stop()
    return load


def reuseport(world, port):
    ipv6 = ipv6_loopback()
    nginx = Nginx(world, port, 4, ipv6=ipv6).start()
    load = Load(http_get(port), concurrency=4).run(400)
    if ipv6:
        load6 = Load(http_get(port, host="::1"), concurrency=4).run(200)
        load.sent += load6.sent
        load.failed += load6.failed
        load.examples += load6.examples
    return load


def reload(world, port, daemon=False):
    nginx = Nginx(world, port, 4, daemon=daemon).start()
    def reloads():
        for _ in range(3):
            nginx.reload()
    return run_with_load(world, nginx, reloads)


def reload_daemon(world, port):
    return reload(world, port, daemon=True)


def worker_count(world, port):
    nginx = Nginx(world, port, 4).start()
    def changes():
        nginx.reload(2)
        nginx.reload(6)
    return run_with_load(world, nginx, changes)


def upgrade(world, port, env_lines=False):
    """USR2: the master execs a new binary, which starts its own workers;
    WINCH then QUIT to the old master, as nginx's documentation says."""
    nginx = Nginx(world, port, 2, daemon=True, env_lines=env_lines).start()
    def binary_upgrade():
        old = nginx.master()
        os.kill(old, signal.SIGUSR2)
        new = wait_until("the new master's pid file", lambda: read_pid(nginx.pid_file) not in (0, old) and
                         read_pid(nginx.pid_file), 20)
        world.extra_pids.append(new)
        wait_until("the new master's workers", lambda: len(children(new)) == 2, 20)
        os.kill(old, signal.SIGWINCH)
        # The new master is the old one's child until the old one leaves.
        wait_until("the old workers to finish", lambda: set(children(old)) <= {new}, 20)
        os.kill(old, signal.SIGQUIT)
        wait_until("the old master to leave", lambda: not os.path.exists(f"/proc/{old}/status") or
                   "zombie" in open(f"/proc/{old}/status").read(), 20)
        world.wait_members(2, 20)
        if not port_answers(port):
            raise ScenarioError("nobody answers after the upgrade:\n" + nginx.errors())
    return run_with_load(world, nginx, binary_upgrade)


def upgrade_env_lines(world, port):
    return upgrade(world, port, env_lines=True)


def restart_broker(world, members):
    if world.broker:
        world.broker.kill()
        world.broker.start()
        world.wait_members(members, 20)


def restart_then_reload(world, port):
    """The broker SIGKILLed and restarted while nginx (daemon on) is idle: its
    workers have not accepted anything yet, its master never does. Then
    `nginx -s reload` under load."""
    nginx = Nginx(world, port, 4, daemon=True).start()
    restart_broker(world, 4)
    load = run_with_load(world, nginx, nginx.reload)
    if world.broker:  # and a second restart recovers as well
        world.broker.kill()
        world.broker.start()
        world.wait_members(4, 20)
        second = Load(http_get(port), concurrency=4).run(200)
        load.sent += second.sent
        load.failed += second.failed
        load.examples += second.examples
    return load


def reload_then_restart(world, port):
    nginx = Nginx(world, port, 4, daemon=True).start()
    def reload_and_restart():
        nginx.reload()
        if world.broker:
            world.broker.kill()
            world.broker.start()
            world.wait_members(4, 20)
    return run_with_load(world, nginx, reload_and_restart)


def handoff_during_reload(world, port):
    """SIGHUP to the broker (a successor takes over) while nginx reloads."""
    nginx = Nginx(world, port, 4, daemon=True).start()
    def both():
        old = children(nginx.master())
        os.kill(nginx.master(), signal.SIGHUP)
        if world.broker:
            os.kill(world.broker.proc.pid, signal.SIGHUP)
        nginx.wait_workers(4, old)
        if world.broker:
            world.broker.proc.wait(20)  # the old broker leaves once taken over
            wait_until("the successor's members", lambda: world.broker.members() == 4, 20)
    load = run_with_load(world, nginx, both)
    if world.broker:  # the successor is nobody's child here
        doc = world.broker.status()
        if doc:
            world.extra_pids.append(doc["pid"])
    return load


SCENARIOS = {
    "nginx.reuseport": reuseport,
    "nginx.reload": reload,
    "nginx.reload_daemon": reload_daemon,
    "nginx.worker_count": worker_count,
    "nginx.upgrade": upgrade,
    "nginx.upgrade_env_lines": upgrade_env_lines,
    "nginx.restart_then_reload": restart_then_reload,
    "nginx.reload_then_restart": reload_then_restart,
    "nginx.handoff_during_reload": handoff_during_reload,
}
