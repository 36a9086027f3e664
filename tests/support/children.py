"""What the Python tests share: a failed check, a child process whose
output is read line by line (echoed, prefixed with its name, into the test's
log) so that a test can wait for a line, and reading a reply off a socket."""

import os
import queue
import re
import signal
import subprocess
import threading
import time


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def receive(client, size):
    """What `client` receives until `size` bytes came or the peer closed."""
    received = b""
    while len(received) < size:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


class Child:
    """A child process whose stderr (and stdout) is read line by line."""

    def __init__(self, name, command):
        self.name = name
        print("$", " ".join(str(part) for part in command), flush=True)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.pid = self.process.pid
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            print(f"  {self.name}:", line.rstrip("\n"), flush=True)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, timeout=10):
        """The match of the next output line with `pattern`; None when the output ended first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(f"{self.name}: no line matching {pattern!r} within {timeout} s")
            if line is None:
                return None
            if match := re.search(pattern, line):
                return match

    def running(self):
        return self.process.poll() is None

    def exit_status(self, timeout=10):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name} still running {timeout} s after it should have exited")

    def stop(self):
        """Kills it by its PID if it still runs, and reaps it."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait()
