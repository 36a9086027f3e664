#!/usr/bin/env python3
"""Two echo servers behind one HAProxy, as docs/deploying.md deploys them.

  haproxy.py --backend select|epoll|uring [--without-redispatch]

Starts two `switchboard echo` instances (a and b) on free loopback ports and
one haproxy in the foreground with the config that haproxy_config() writes
(TCP mode, health checks every 100 ms, `retries 3`, `option redispatch 1`,
short timeouts), all in a temporary directory of its own. Then:

1. Traffic reaches both instances: the bytes-in of their SIGUSR1 lines add
   up to exactly what the clients sent, and neither is 0.
2. Drain: SIGTERM to a while two clients at a time keep connecting through
   HAProxy. Every one of them gets its exact bytes back; a client that a
   was serving before the signal is still served during the drain; a exits 0
   once it has closed, its last statistics saying `open 0`.
3. a is started again on its port, then restarted the way docs/deploying.md
   recommends: set to drain on HAProxy's admin socket, it gets no new client
   (its bytes-in stays put while clients go on), SIGTERM, started again, set
   ready, UP; no client is lost meanwhile.
4. b is killed with SIGKILL: the clients that were on b see their
   connection end (EOF or a reset, within seconds, never a hang), and every
   client that connects once b's port refuses connects gets its echo, from a.

Nothing is left running at the end: every child is stopped by its PID, and
no process whose parent is this one remains. --without-redispatch drops
`retries` and `option redispatch` from the config, to watch the test fail.
Exit 0 passed, 1 failed, 77 skipped (no haproxy, or the backend refused here).
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from children import Child, Failure, check, receive  # noqa: E402

TEST_SECONDS = 60  # the whole test, all phases
SKIP = 77


def free_port():
    """A loopback port that was free a moment ago (for haproxy's frontend,
    which cannot bind port 0 and tell us which port it got)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo(Child):
    """One `switchboard echo` instance; `port` 0 binds a free one."""

    def __init__(self, name, program, backend, port=0):
        super().__init__(name, [program, "echo", "--backend", backend, "--port", str(port),
                                "--drain-timeout", "5"])
        listening = self.wait_for(r"listening on 127\.0\.0\.1:(\d+) \(tcp, backend (\w+)\)")
        if listening is None:
            self.status = self.exit_status()
            self.port = None
            return
        self.status = None
        self.port = int(listening[1])

    def stats(self):
        """The numbers of a SIGUSR1 statistics line, by name."""
        os.kill(self.pid, signal.SIGUSR1)
        return self.read_stats()

    def read_stats(self):
        line = self.wait_for(r"echo: stats: (.*)")
        check(line is not None, f"{self.name} exited before printing statistics")
        words = line[1].split()
        return {key: int(value) for key, value in zip(words[::2], words[1::2]) if value.isdigit()}


def haproxy_config(frontend_port, servers, admin_socket, redispatch=True):
    """The deployment of docs/deploying.md with the test's short timings.
    `servers`: (name, port) pairs."""
    lines = [
        "global",
        f"    stats socket {admin_socket} mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",     # docs: 5s
        "    timeout client 10s",     # docs: 65s, above the server's --idle-timeout 60
        "    timeout server 10s",     # docs: 65s
        "    timeout check 500ms",    # docs: 2s
    ]
    if redispatch:
        lines += [
            "    retries 3",
            "    option redispatch 1",
        ]
    lines += [
        "",
        "frontend echo",
        f"    bind 127.0.0.1:{frontend_port}",
        "    default_backend echo",
        "",
        "backend echo",
        "    balance roundrobin",
        "    default-server check inter 100ms fall 2 rise 1",  # docs: inter 1s fall 2 rise 2
    ]
    lines += [f"    server {name} 127.0.0.1:{port}" for name, port in servers]
    return "\n".join(lines) + "\n"


class Haproxy(Child):
    def __init__(self, program, work, frontend_port, servers, redispatch):
        self.admin_socket = work / "admin.sock"
        config = work / "haproxy.cfg"
        config.write_text(haproxy_config(frontend_port, servers, self.admin_socket, redispatch))
        print(config.read_text(), flush=True)
        self.port = frontend_port
        # -db: foreground, no daemon; -f: this config alone, nothing from /etc.
        super().__init__("haproxy", [program, "-db", "-f", str(config)])

    def admin(self, command):
        """The answer of the stats socket to one command."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.admin_socket))
            s.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        return answer.decode()

    def server_states(self):
        """{server name: status} of the backend, e.g. {'a': 'UP', 'b': 'DOWN'}."""
        states = {}
        for line in self.admin("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "echo" and fields[1] not in ("FRONTEND", "BACKEND"):
                states[fields[1]] = fields[17]
        return states

    def wait_states(self, expected, timeout=10):
        """Waits until each server named in `expected` has that status ('UP', or 'DOWN' for any DOWN)."""
        deadline = time.monotonic() + timeout
        states = {}
        while time.monotonic() < deadline:
            check(self.running(), "haproxy exited")
            try:
                states = self.server_states()
            except OSError:
                states = {}  # the socket is not there yet
            if all(states.get(name, "").startswith(status) for name, status in expected.items()):
                return
            time.sleep(0.02)
        raise Failure(f"haproxy: servers {states}, not {expected} within {timeout} s")

    def server_of(self, client):
        """The name of the server that the session of a client socket went to."""
        src = "127.0.0.1:%d" % client.getsockname()[1]
        for line in self.admin("show sess").splitlines():
            if f"src={src} " in line and (match := re.search(r" srv=(\S+)", line)):
                return match[1]
        return None


def echo_once(port, payload, timeout=5):
    """Connects through HAProxy, sends `payload`, and checks that exactly it comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(payload)
        received = receive(client, len(payload))
        check(received == payload, f"sent {len(payload)} bytes, got {len(received)} back"
              + ("" if payload.startswith(received) else ", not the same"))


def payload_for(tag, n):
    head = f"{tag} client {n} ".encode()
    return head + random.randbytes(random.randint(1, 4096))


class Load:
    """Clients that keep connecting through HAProxy, `workers` at a time,
    each with bytes of its own, until stop()."""

    def __init__(self, port, tag, workers=2):
        self.port = port
        self.tag = tag
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.served = []    # (start time, bytes) of each client that got its echo
        self.failures = []  # (start time, what went wrong)
        self.count = 0
        self.finished = set()  # the numbers of the clients that are done
        self.started = time.monotonic()
        self.slowest = 0.0  # seconds, the longest a served client took
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping.is_set():
            with self.lock:
                self.count += 1
                n = self.count
            payload = payload_for(self.tag, n)
            started = time.monotonic()
            try:
                echo_once(self.port, payload)
                with self.lock:
                    self.served.append((started, len(payload)))
                    self.slowest = max(self.slowest, time.monotonic() - started)
            except (OSError, Failure) as e:
                with self.lock:
                    self.failures.append((started, f"client {n}: {e!r}"))
            with self.lock:
                self.finished.add(n)
            time.sleep(0.005)

    def wait_served(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.served) < n:
            check(time.monotonic() < deadline, f"{self.tag}: {len(self.served)} clients served "
                  f"within {timeout} s, not {n}; failures {self.failures[:3]}")
            time.sleep(0.01)

    def wait_done_so_far(self, timeout=10):
        """Waits until every client started until now is done."""
        with self.lock:
            started = set(range(1, self.count + 1))
        deadline = time.monotonic() + timeout
        while not started <= self.finished:
            check(time.monotonic() < deadline, f"{self.tag}: clients {sorted(started - self.finished)} "
                  f"not done within {timeout} s")
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)
        check(not any(t.is_alive() for t in self.threads), f"{self.tag}: a client hangs")

    def check_all_served(self, event, when):
        """Fails if any client was lost, saying when it started, in ms after `event` at `when`."""
        lost = [f"{what} (started {1000 * (started - when):+.1f} ms after {event})"
                for started, what in self.failures]
        check(not lost, f"{self.tag}: {len(lost)} of {self.count} clients lost: {lost[:5]}")


def open_on(haproxy, server, tag, wanted=1, tries=8):
    """Keeps `wanted` connections through HAProxy that landed on `server`
    (each has been echoed once); closes the others."""
    kept = []
    for n in range(tries):
        client = socket.create_connection(("127.0.0.1", haproxy.port), timeout=5)
        payload = f"{tag} long client {n}\n".encode()
        client.sendall(payload)
        check(client.recv(len(payload), socket.MSG_WAITALL) == payload, f"{tag}: no echo")
        if haproxy.server_of(client) == server:
            kept.append(client)
            if len(kept) == wanted:
                return kept
        else:
            client.close()
    for client in kept:
        client.close()
    raise Failure(f"{tag}: fewer than {wanted} of {tries} connections went to {server}")


def restart(server, old, name, program, backend, haproxy, children, expected="UP"):
    """Starts the instance `old` of `server` again on its port; returns it
    once HAProxy shows `server` with a status that starts with `expected`
    (None: at once, once it listens)."""
    check(not old.running(), f"{old.name} still runs")
    new = Echo(name, program, backend, old.port)
    children.append(new)
    check(new.port is not None, f"{name} exited {new.status} before listening")
    if expected is not None:
        haproxy.wait_states({server: expected})
    return new


def wait_refused(port, timeout=5):
    """The time at which a connect to `port` is first refused."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except ConnectionRefusedError:
            return time.monotonic()
        except OSError:
            pass
        check(time.monotonic() < deadline, f"port {port} still accepts connects {timeout} s on")
        time.sleep(0.001)


def children_of(pid):
    """PIDs of the live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name, which may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def run(program, haproxy_program, backend, redispatch):
    work = Path(tempfile.mkdtemp(prefix="switchboard-haproxy-"))
    children = []
    try:
        a = Echo("a", program, backend)
        children.append(a)
        if a.port is None:
            if backend == "uring" and a.status == 69:
                print("skipped: this kernel refuses io_uring (exit 69)")
                return SKIP
            raise Failure(f"a exited {a.status} before listening")
        b = Echo("b", program, backend)
        children.append(b)
        check(b.port is not None, f"b exited {b.status} before listening")
        haproxy = Haproxy(haproxy_program, work, free_port(), [("a", a.port), ("b", b.port)], redispatch)
        children.append(haproxy)
        haproxy.wait_states({"a": "UP", "b": "UP"})

        # 1. Both instances serve: health checks send nothing, so the bytes
        # the servers read are the clients' bytes, split between the two.
        sent = 0
        for n in range(20):
            payload = payload_for("spread", n)
            echo_once(haproxy.port, payload)
            sent += len(payload)
        stats_a, stats_b = a.stats(), b.stats()
        check(stats_a["bytes-in"] > 0 and stats_b["bytes-in"] > 0,
              f"not both served: a read {stats_a['bytes-in']} bytes, b {stats_b['bytes-in']}")
        check(stats_a["bytes-in"] + stats_b["bytes-in"] == sent,
              f"a and b read {stats_a['bytes-in']} + {stats_b['bytes-in']} bytes, the clients sent {sent}")
        print(f"1. both served: a read {stats_a['bytes-in']} bytes, b {stats_b['bytes-in']}", flush=True)

        # 2. SIGTERM to a while clients keep connecting: nobody is lost.
        (on_a,) = open_on(haproxy, "a", "drain")
        load = Load(haproxy.port, "drain")
        load.wait_served(20)
        term_sent = time.monotonic()
        os.kill(a.pid, signal.SIGTERM)
        check(a.wait_for(r"no longer accepting") is not None, "a: no drain after SIGTERM")
        haproxy.wait_states({"a": "DOWN", "b": "UP"}, timeout=5)
        down_seen = time.monotonic()
        load.wait_served(len(load.served) + 20)
        check(a.running(), "a exited while a client it serves is still connected")
        payload = payload_for("during the drain", 0)
        on_a.sendall(payload)
        check(on_a.recv(len(payload), socket.MSG_WAITALL) == payload, "a did not serve its client during the drain")
        on_a.close()
        check(a.read_stats().get("open") == 0, "a's last statistics show open connections")
        status = a.exit_status()
        check(status == 0, f"a exited {status} after its drain, not 0")
        load.wait_served(len(load.served) + 20)
        load.stop()
        load.check_all_served("SIGTERM", term_sent)
        during = sum(1 for started, _ in load.served if started >= term_sent)
        print(f"2. drain: {len(load.served)} clients served, {during} of them after SIGTERM, the slowest "
              f"in {1000 * load.slowest:.0f} ms; haproxy saw a DOWN {1000 * (down_seen - term_sent):.0f} ms "
              f"after it; a exited 0", flush=True)

        # 3. A rolling restart of a that HAProxy is told of: set to drain
        # on the admin socket, it gets no new client, so its SIGTERM meets
        # no connect at all; started again, it is put back.
        a = restart("a", a, "a (again)", program, backend, haproxy, children)
        load = Load(haproxy.port, "restart")
        load.wait_served(10)
        haproxy.admin("set server echo/a state drain")
        haproxy.wait_states({"a": "DRAIN"}, timeout=5)
        load.wait_done_so_far()  # a client already on its way to a finishes
        before = a.stats()["bytes-in"]
        load.wait_served(len(load.served) + 20)
        check(a.stats()["bytes-in"] == before, "a in the drain state still got new clients")
        os.kill(a.pid, signal.SIGTERM)
        check(a.exit_status() == 0, "a did not exit 0 on SIGTERM")
        a = restart("a", a, "a (third)", program, backend, haproxy, children, expected=None)
        haproxy.admin("set server echo/a state ready")
        haproxy.wait_states({"a": "UP", "b": "UP"})
        load.wait_served(len(load.served) + 20)
        load.stop()
        load.check_all_served("the start of the restart", load.started)
        print(f"3. restart by the admin socket: {len(load.served)} clients served, the slowest in "
              f"{1000 * load.slowest:.0f} ms", flush=True)

        # 4. SIGKILL to b.
        before = a.stats()["bytes-in"]
        on_b = open_on(haproxy, "b", "kill", wanted=2)
        os.kill(b.pid, signal.SIGKILL)
        b.exit_status()
        killed = time.monotonic()
        # The clients of a process that is gone: its listener is closed, so
        # a connect to its port is refused and HAProxy sends it elsewhere.
        # With io_uring the kernel tears the ring down after the process
        # has been reaped, and the listener a pending accept holds can
        # outlive it by some milliseconds: a connect then completes and is
        # reset, too late for HAProxy to retry (docs/deploying.md).
        gone = wait_refused(b.port)
        print(f"4. b's listener refuses connects {1000 * (gone - killed):.1f} ms after b was reaped",
              flush=True)
        load = Load(haproxy.port, "after the kill")
        for client in on_b:
            client.settimeout(5)
            try:
                end = client.recv(1)
                check(end == b"", f"a client of the killed b read {end!r}, not EOF")
                seen = "EOF"
            except ConnectionResetError:
                seen = "reset"
            except socket.timeout:
                raise Failure("a client of the killed b hangs: no EOF or reset within 5 s")
            print(f"4. a client of the killed b saw {seen} after {1000 * (time.monotonic() - killed):.0f} ms",
                  flush=True)
            client.close()
        haproxy.wait_states({"a": "UP", "b": "DOWN"}, timeout=5)
        load.wait_served(len(load.served) + 20)
        load.stop()
        load.check_all_served("b's listener was gone", gone)
        served_bytes = sum(size for _, size in load.served)
        after = a.stats()["bytes-in"]
        check(after - before >= served_bytes, f"a read {after - before} bytes since b was killed, "
              f"its {len(load.served)} clients sent {served_bytes}")
        print(f"4. after the kill: {len(load.served)} clients served by a, the slowest in "
              f"{1000 * load.slowest:.0f} ms", flush=True)

        os.kill(a.pid, signal.SIGTERM)
        check(a.exit_status() == 0, "a did not exit 0 on SIGTERM")
        os.kill(haproxy.pid, signal.SIGTERM)
        haproxy.exit_status()
        return 0
    except Exception as e:  # any error fails the test, after the clean-up below
        print("FAIL:", repr(e), flush=True)
        return 1
    finally:
        signal.alarm(0)
        for child in children:
            child.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=["select", "epoll", "uring"])
    parser.add_argument("--without-redispatch", action="store_true",
                        help="leave retries and option redispatch out of the config (the test should fail)")
    options = parser.parse_args()
    program = os.environ.get("SWITCHBOARD_BIN", "build/switchboard")
    # Debian installs it in /usr/sbin, which a user's PATH often lacks.
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/local/sbin:/usr/sbin")
    if haproxy is None:
        print("skipped: no haproxy (./dev installs it)")
        return SKIP
    # The whole test is bounded: a hang anywhere ends it as a failure.
    def out_of_time(*_):
        raise Failure(f"not done within {TEST_SECONDS} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TEST_SECONDS)
    started = time.monotonic()
    status = run(program, haproxy, options.backend, not options.without_redispatch)
    left = children_of(os.getpid())
    if left:
        print(f"FAIL: processes left running: {left}", flush=True)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        status = 1
    print(f"{options.backend}: {'passed' if status == 0 else 'skipped' if status == SKIP else 'FAILED'} "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
