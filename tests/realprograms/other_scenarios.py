"""haproxy 2.6, unbound, gunicorn, Python asyncio and a program that never
asks for SO_REUSEPORT (shared with reuseport-run --ports)."""
import os
import signal
import subprocess
import sys

from harness import ScenarioError, catches, children, port_answers, read_pid, wait_until
from load import Load, dns_query, http_get, udp_echo

HAPROXY = "/usr/sbin/haproxy"
UNBOUND = "/usr/sbin/unbound"
PYTHON = "/usr/bin/python3"  # Debian's, where python3-gunicorn lives
HERE = os.path.dirname(os.path.abspath(__file__))


def missing_program(name):
    needs = {"haproxy": HAPROXY, "unbound": UNBOUND, "nginx": "/usr/sbin/nginx", "gunicorn": PYTHON}
    program = needs.get(name.split(".")[0])
    if program and not os.access(program, os.X_OK):
        return program
    if name.startswith("gunicorn"):
        r = subprocess.run([PYTHON, "-c", "import gunicorn"], capture_output=True)
        if r.returncode != 0:
            return "python3-gunicorn"
    return None


# ---- haproxy ----

def tls_pem(world):
    """A throwaway certificate: OpenSSL must work under the runner (issue #12, item 6)."""
    key, cert, both = world.path("key.pem"), world.path("cert.pem"), world.path("tls.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=reuseport-test"], check=True, capture_output=True)
    with open(both, "w") as out:
        out.write(open(cert).read() + open(key).read())
    return both


def haproxy_config(world, port, tls_port=None, threads=1, per_thread=False, stats=False, master_worker=False):
    lines = ["global", f"  nbthread {threads}", "  maxconn 2000"]
    if stats:
        lines.append(f"  stats socket {world.path('haproxy.sock')} mode 600 level admin expose-fd listeners")
    lines += ["defaults", "  mode http", "  timeout connect 2s", "  timeout client 10s", "  timeout server 10s",
              "frontend web"]
    if per_thread:
        for t in range(1, threads + 1):
            lines.append(f"  bind 127.0.0.1:{port} thread {t}")
    else:
        lines.append(f"  bind 127.0.0.1:{port}")
    if tls_port:
        lines.append(f"  bind 127.0.0.1:{tls_port} ssl crt {tls_pem(world)}")
    lines.append("  http-request return status 200 content-type text/plain string ok")
    with open(world.path("haproxy.cfg"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return world.path("haproxy.cfg")


def haproxy_members(world, count):
    world.wait_members(count, 20)


def haproxy_sf(world, port, reloads=10, expose=False):
    """`haproxy -sf OLD` ten times under load; with `expose`, the new process
    takes the listeners over with -x (expose-fd listeners)."""
    cfg = haproxy_config(world, port, stats=expose)
    first = world.start([HAPROXY, "-db", "-f", cfg], "haproxy0")
    wait_until("haproxy answering", lambda: port_answers(port), 20)
    haproxy_members(world, 1)
    taken_over = world.member_ids()
    current = first
    load = Load(http_get(port), concurrency=4, limit=6000).start()
    load.wait_for(50)
    for i in range(1, reloads + 1):
        argv = [HAPROXY, "-db", "-f", cfg]
        if expose:
            argv += ["-x", world.path("haproxy.sock")]
        argv += ["-sf", str(current.pid)]
        old = current
        current = world.start(argv, f"haproxy{i}")
        wait_until("the old haproxy to leave", lambda: old.poll() is not None, 30)
        if current.poll() is not None:
            raise ScenarioError(f"haproxy {i} exited: {world.log(f'haproxy{i}')}")
        # Bound anew (-sf alone) the group has a new member, as the kernel's
        # has a new socket; taken over (-x) it is the same member, as the
        # kernel's is the same socket (issue #12, item 4).
        haproxy_members(world, 1)
        if expose and world.member_ids() != taken_over:
            raise ScenarioError(f"-x: members {world.member_ids()} after reload {i}, expected {taken_over} taken over")
        load.wait_for(load.sent + 30)
    load.stop()
    return load


def haproxy_x(world, port):
    return haproxy_sf(world, port, reloads=3, expose=True)


def haproxy_threads(world, port):
    """nbthread 4 with one bind line per thread: four members; and a TLS bind."""
    tls_port = port + 1 if port_free(port + 1) else None
    cfg = haproxy_config(world, port, tls_port=tls_port, threads=4, per_thread=True)
    world.start([HAPROXY, "-db", "-f", cfg], "haproxy")
    wait_until("haproxy answering", lambda: port_answers(port), 20)
    haproxy_members(world, 4 + (1 if tls_port else 0))
    load = Load(http_get(port), concurrency=4).run(400)
    if tls_port:
        tls = Load(http_get(tls_port, tls=True), concurrency=2).run(50)
        load.sent += tls.sent
        load.failed += tls.failed
        load.examples += tls.examples
    return load


def port_free(port):
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def haproxy_master_worker(world, port):
    """-W: the master re-execs itself on SIGUSR2 and the new worker gets the
    listeners from the old one."""
    cfg = haproxy_config(world, port)
    pid_file = world.path("haproxy.pid")
    master = world.start([HAPROXY, "-W", "-db", "-f", cfg, "-p", pid_file], "haproxy")
    wait_until("haproxy answering", lambda: port_answers(port), 20)
    haproxy_members(world, 1)
    load = Load(http_get(port), concurrency=4, limit=4000).start()
    load.wait_for(50)
    master_pid = wait_until("the master's pid", lambda: read_pid(pid_file), 10)
    taken_over = world.member_ids()
    for _ in range(3):
        old = children(master_pid)
        # The master takes SIGUSR2 only once it is serving as the master again.
        wait_until("the master ready for a reload", lambda: catches(master_pid, signal.SIGUSR2) and len(old) == 1, 20)
        os.kill(master_pid, signal.SIGUSR2)
        wait_until("a new worker and the old one gone",
                   lambda: (lambda kids: len(kids) == 1 and not set(kids) & set(old))(children(master_pid)), 30)
        haproxy_members(world, 1)
        if world.member_ids() != taken_over:
            raise ScenarioError(f"-W: members {world.member_ids()} after a reload, expected {taken_over} taken over")
        load.wait_for(load.sent + 50)
    load.stop()
    return load


# ---- unbound ----

def unbound_config(world, port, index):
    d = world.path(f"unbound{index}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "unbound.conf")
    with open(path, "w") as f:
        f.write(f"""server:
  interface: 127.0.0.1@{port}
  so-reuseport: yes
  num-threads: 1
  do-ip6: no
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  verbosity: 1
  module-config: "iterator"
  local-zone: "reuseport.test." static
  local-data: "www.reuseport.test. A 192.0.2.{index + 1}"
  do-not-query-localhost: yes
remote-control:
  control-enable: no
""")
    return path


def unbound(world, port):
    for i in range(2):
        world.start([UNBOUND, "-d", "-c", unbound_config(world, port, i)], f"unbound{i}")
    world.wait_members(4, 20)  # each copy: a UDP and a TCP socket on the port
    return Load(dns_query(port, "www.reuseport.test"), concurrency=8).run(600)


# ---- gunicorn, asyncio, --ports ----

def gunicorn(world, port):
    for i in range(2):
        world.start([PYTHON, "-m", "gunicorn", "--reuse-port", "-w", "2", "-b", f"127.0.0.1:{port}",
                     "--chdir", HERE, "wsgi_app:app"], f"gunicorn{i}")
        wait_until("gunicorn answering", lambda: port_answers(port), 30)
        world.wait_members(i + 1, 20)
    return Load(http_get(port), concurrency=4).run(400)


def asyncio_tcp(world, port):
    for i in range(2):
        world.start([sys.executable, os.path.join(HERE, "asyncio_server.py"), "tcp", str(port), f"a{i}"],
                    f"asyncio{i}")
        world.wait_members(i + 1, 20)
        wait_until("the server answering", lambda: port_answers(port), 20)
    return Load(http_get(port), concurrency=4).run(400)


def asyncio_udp(world, port):
    for i in range(2):
        ready = world.path(f"asyncio{i}.ready")
        world.start([sys.executable, os.path.join(HERE, "asyncio_server.py"), "udp", str(port), f"a{i}", ready],
                    f"asyncio{i}")
        wait_until("the server ready", lambda: os.path.exists(ready), 20)
        world.wait_members(i + 1, 20)
    return Load(udp_echo(port), concurrency=8).run(600)


def never_asks(world, port):
    """python3 -m http.server twice: it never sets SO_REUSEPORT; natively the
    second copy fails, so natively this is one copy (and emulated, two via
    reuseport-run --ports)."""
    copies = 2 if world.broker else 1
    for i in range(copies):
        world.start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], f"http{i}",
                    ports=f"{port}/tcp")
        world.wait_members(i + 1, 20)
        wait_until("http.server answering", lambda: port_answers(port), 20)
    return Load(http_get(port), concurrency=4).run(400)


SCENARIOS = {
    "haproxy.sf_reloads": haproxy_sf,
    "haproxy.expose_fd": haproxy_x,
    "haproxy.threads_tls": haproxy_threads,
    "haproxy.master_worker": haproxy_master_worker,
    "unbound.two_copies": unbound,
    "gunicorn.reuse_port": gunicorn,
    "python.asyncio_tcp": asyncio_tcp,
    "python.asyncio_udp": asyncio_udp,
    "python.http_server_ports": never_asks,
}
