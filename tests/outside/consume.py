#!/usr/bin/env python3
"""The out-of-tree consumer (examples/outside) as a user builds it.

  consume.py SOURCE_ROOT

1. Installs this tree with -Dservices=disabled into a temporary prefix: the
   runtime and the kit only, with no CLI11, OpenSSL or Catch2 looked up.
2. Builds examples/outside against that prefix through pkg-config alone.
3. Runs it on select, epoll and uring (exit 69, the backend refused here,
   skips that one) and talks to it over loopback: replies to lines, then
   SIGTERM with a client connected, which it must serve to the end and exit 0.
4. Builds it again with this tree as a meson subproject, and checks that the
   build holds nothing but the library and the consumer.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from children import Child, Failure, check, receive  # noqa: E402

LIBRARY_DEPENDENCIES = {"fmt", "liburing"}
LIBRARY_TARGETS = {"switchboard", "switchboard-kit"}
CONSUMER = "shout"


def run(command, env, timeout=300):
    print("$", " ".join(str(part) for part in command), flush=True)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        print(done.stdout)
        raise Failure(f"{command[0]} exited {done.returncode}")
    return done.stdout


def introspect(build_dir, what, env):
    return json.loads(run(["meson", "introspect", build_dir, "--" + what], env, timeout=60))


def check_only_library(build_dir, source, consumer_sources, env):
    """What the build dir can build: the library and the consumer, no more.
    Returns the objects it compiles."""
    dependencies = {d["name"] for d in introspect(build_dir, "dependencies", env)}
    check(dependencies <= LIBRARY_DEPENDENCIES | {"switchboard"},
          f"{build_dir} looked up more than the library needs: {sorted(dependencies)}")
    targets = {t["name"] for t in introspect(build_dir, "targets", env)}
    expected = LIBRARY_TARGETS | ({CONSUMER} if consumer_sources else set())
    check(targets == expected, f"{build_dir} builds {sorted(targets)}, not {sorted(expected)}")
    library_sources = [source / "runtime" / "src", source / "kit" / "src"]
    commands = json.loads((build_dir / "compile_commands.json").read_text())
    for command in commands:
        compiled = (Path(command["directory"]) / command["file"]).resolve()
        check(compiled in consumer_sources or any(compiled.is_relative_to(d) for d in library_sources),
              f"{build_dir} compiles {compiled}, neither the library nor the consumer")
    check(len(commands) > len(consumer_sources), f"{build_dir} compiles no library source")
    return {command["output"] for command in commands}


def exchange(client, sent, expected):
    """Sends each of `sent` as its own write, then reads until `expected` came back."""
    for part in sent:
        client.sendall(part)
        time.sleep(0.05)  # separate segments, so that a line spans several reads
    received = receive(client, len(expected))
    check(received == expected, f"sent {sent}, expected {expected}, got {received}")


def serve_lines(program, backend):
    """Runs the consumer on `backend`; False when this kernel refuses the backend."""
    server = Child("server", [program, backend, "0"])
    try:
        listening = server.wait_for(r"listening on 127\.0\.0\.1:(\d+) \(tcp, backend (\w+)\)")
        if listening is None:
            status = server.exit_status()
            if backend == "uring" and status == 69:
                return False
            raise Failure(f"{backend}: exited {status} before listening")
        check(listening[2] == backend, f"asked for {backend}, it listens with {listening[2]}")
        port = int(listening[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            exchange(client, [b"hel", b"lo\nsecond line\r\n", b"third\n"], b"HELLO\nSECOND LINE\nTHIRD\n")
            exchange(client, [b"x" * 300 + b"\n"], b"error: line too long\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            exchange(client, [b"before stop\n"], b"BEFORE STOP\n")
            server.process.send_signal(signal.SIGTERM)
            check(server.wait_for(r"no longer accepting; draining") is not None, "no drain after SIGTERM")
            time.sleep(0.5)  # a drain cut short would have ended the connection by now
            check(server.process.poll() is None, f"{backend}: exited while draining a connected client")
            exchange(client, [b"while draining\n"], b"WHILE DRAINING\n")
        check(server.wait_for(r"stats: open 0 total 2 ") is not None, "no final statistics")
        status = server.exit_status()
        check(status == 0, f"{backend}: exit {status} after a drained SIGTERM, not 0")
        return True
    finally:
        server.stop()


def main(source):
    work = Path(tempfile.mkdtemp(prefix="switchboard-outside-"))
    # The build directories change with every run; the compile commands
    # (relative paths) do not. Not hashing the directory lets ccache reuse
    # them, at the price of debug info naming a directory that is gone.
    env = dict(os.environ, CCACHE_NOHASHDIR="1")
    env.pop("PKG_CONFIG_PATH", None)
    try:
        prefix = work / "prefix"
        library = work / "library"
        run(["meson", "setup", library, source, "-Dservices=disabled", f"--prefix={prefix}",
             "-Dwerror=true", "--wrap-mode=nodownload"], env)
        check_only_library(library, source, set(), env)
        run(["ninja", "-C", library], env)
        run(["meson", "install", "-C", library, "--quiet"], env)
        installed = [p.relative_to(prefix) for p in prefix.rglob("*") if p.is_file()]
        check(not (prefix / "bin").exists(), f"the library install has programs: {sorted(map(str, installed))}")
        pc_files = list(prefix.rglob("pkgconfig/switchboard.pc"))
        check(len(pc_files) == 1, "no switchboard.pc installed")

        consumer_source = source / "examples" / "outside"
        consumer = work / "consumer"
        # nofallback: found through pkg-config or not at all.
        run(["meson", "setup", consumer, consumer_source, "-Dwerror=true", "--wrap-mode=nofallback"],
            dict(env, PKG_CONFIG_PATH=str(pc_files[0].parent)))
        run(["ninja", "-C", consumer], env)
        for backend in ["select", "epoll", "uring"]:
            print(f"{backend}:", "ok" if serve_lines(consumer / CONSUMER, backend) else "skipped (exit 69)",
                  flush=True)
        # A backend the kit does not know is a usage error, never a silent select.
        unknown = subprocess.run([consumer / CONSUMER, "bogus"], capture_output=True, text=True, timeout=10)
        check(unknown.returncode == 2 and "unknown backend 'bogus'" in unknown.stderr,
              f"shout bogus: exit {unknown.returncode}, stderr {unknown.stderr!r}")

        # The consumer with this tree as subprojects/switchboard, as a parent
        # project holds it (a wrap or a checkout; here a link).
        parent = work / "parent"
        shutil.copytree(consumer_source, parent)
        (parent / "subprojects").mkdir()
        (parent / "subprojects" / "switchboard").symlink_to(source, target_is_directory=True)
        parent_build = work / "parent-build"
        run(["meson", "setup", parent_build, parent, "-Dwerror=true", "--wrap-mode=nodownload",
             "--force-fallback-for=switchboard"], env)
        parent_sources = {p.resolve() for p in parent.glob("*.cpp")}
        objects = check_only_library(parent_build, source, parent_sources, env)
        built = run(["ninja", "-C", parent_build], env)
        compiled = set(re.findall(r"Compiling C\+\+ object (\S+)", built))
        check(compiled == objects, f"ninja compiled {sorted(compiled - objects)} besides, "
              f"or left out {sorted(objects - compiled)} of, the library and the consumer")
        check(serve_lines(parent_build / CONSUMER, "select"), "the subproject build's consumer refused select")
        print("subproject: ok")
    except (Failure, subprocess.TimeoutExpired) as e:
        print("FAIL:", e, flush=True)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
