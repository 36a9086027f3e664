#!/usr/bin/env python3
"""switchboard trace-view as a user runs it, on traces the runtime wrote.

  test_trace_view_cli.py SWITCHBOARD DATA_DIR

Every trace in DATA_DIR drawn to SVG parses as XML (xml.etree) and names
every task; drawn to HTML it is one self-contained page (html.parser; no
script, no link, no http(s):// reference, an SVG that is well-formed XML).
A window and --tasks pick the rows; a file cut short is drawn with a
warning; bad files are exit 1 with one line on stderr, a bad output name or
window exit 2. Exits 1 on the first failed check.
"""
import html.parser
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"

switchboard, data = sys.argv[1], sys.argv[2]
traces = sorted(os.path.join(data, f) for f in os.listdir(data) if f.endswith(".json"))
assert traces, f"no traces in {data}"
failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print(f"FAILED: {what}", file=sys.stderr)
    return ok


def trace_view(*args):
    run = subprocess.run([switchboard, "trace-view", *args], capture_output=True, text=True, timeout=60)
    return run.returncode, run.stdout, run.stderr


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["traceEvents"]


def task_names(path):
    return [e["args"]["name"] for e in load(path) if e.get("ph") == "M" and e.get("name") == "thread_name"]


def texts(root, ns):
    """The text of every <title> and every <text> under root."""
    titles = ["".join(t.itertext()) for t in root.iter(ns + "title")]
    labels = ["".join(t.itertext()) for t in root.iter(ns + "text")]
    return titles, labels


class page_parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.attrs = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


with tempfile.TemporaryDirectory() as tmp:
    for trace in traces:
        names = task_names(trace)
        check(len(names) >= 3, f"{trace}: a loop and at least two tasks")

        # SVG: a real XML parser, every task named in its row's title, waits labelled.
        out = os.path.join(tmp, "out.svg")
        status, _, err = trace_view(trace, "-o", out)
        if check(status == 0 and err == "", f"{trace} -o out.svg: exit 0, quiet (got {status}: {err})"):
            root = ET.parse(out).getroot()
            check(root.tag == SVG + "svg", f"the root is <svg>, got {root.tag}")
            titles, labels = texts(root, SVG)
            for name in names:
                check(any(t.startswith(name + " (tid ") for t in titles), f"{trace}: a row titled {name!r}")
            check("loop" in labels, "the loop's row is labelled")
            check(any("\u2192" in label for label in labels), "some wait is labelled with its result")
            check(any(label.endswith(" ms") or label.endswith(" µs") for label in labels), "the axis has units")
            events = load(trace)
            if any(e.get("args", {}).get("unfinished") for e in events):
                check(any("unfinished" in t for t in titles), f"{trace}: its unfinished waits are marked")
            for e in events:
                if e.get("ph") == "i" and e.get("s") == "g":
                    check(any(t.startswith(e["name"]) for t in titles), f"{trace}: a line for {e['name']!r}")

        # HTML: one self-contained page holding the same SVG.
        page = os.path.join(tmp, "out.html")
        status, _, err = trace_view(trace, "-o", page, "--width", "900")
        if check(status == 0 and err == "", f"{trace} -o out.html: exit 0, quiet (got {status}: {err})"):
            with open(page, encoding="utf-8") as f:
                text = f.read()
            parser = page_parser()
            parser.feed(text)
            parser.close()
            check(text.startswith("<!DOCTYPE html>"), "the page is HTML")
            check(parser.tags.count("svg") == 1, "one <svg> in the page")
            check("script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags,
                  f"no script, link or img: {set(parser.tags)}")
            check(all(name not in ("src", "href") for name, _ in parser.attrs), "no src or href attribute")
            check("http://" not in text and "https://" not in text, "no http(s):// reference")
            svg = text[text.index("<svg"):text.index("</svg>") + len("</svg>")]
            root = ET.fromstring(svg)
            titles, _ = texts(root, "")
            for name in names:
                check(any(t.startswith(name + " (tid ") for t in titles), f"{trace} (HTML): a row titled {name!r}")

        # --tasks 1: the first task and the loop only.
        status, _, err = trace_view(trace, "-o", out, "--tasks", "1")
        if check(status == 0, f"--tasks 1: exit 0 ({err})"):
            _, labels = texts(ET.parse(out).getroot(), SVG)
            check(names[1] in labels and "loop" in labels, f"--tasks 1 draws {names[1]!r} and the loop")
            check(not any(n in labels for n in names[2:]), "--tasks 1 draws no other task")
            check(any("more task track" in label for label in labels), "--tasks 1 says what it left out")

        # A window: a well-formed picture whose axis starts at --from.
        status, _, err = trace_view(trace, "-o", out, "--from", "0", "--to", "0.5")
        check(status == 0, f"--from 0 --to 0.5: exit 0 ({err})")
        ET.parse(out)

        # Cut short, as SIGKILL leaves it: drawn up to the cut, one warning line.
        with open(trace, encoding="utf-8") as f:
            whole = f.read()
        cut = os.path.join(tmp, "cut.json")
        with open(cut, "w", encoding="utf-8") as f:
            f.write(whole[: len(whole) * 2 // 3])
        status, _, err = trace_view(cut, "-o", out)
        check(status == 0, f"a cut file is drawn (exit {status}: {err})")
        check(err.count("\n") == 1 and err.startswith(f"trace-view: {cut}: warning: the file is cut short"),
              f"one warning line: {err!r}")
        check("CUT SHORT" in open(out, encoding="utf-8").read(), "the picture says it is cut short")

    # Bad files: exit 1, one line on stderr naming the file, no picture.
    bad_files = {
        "empty.json": "",
        "not-json.json": "hello\n",
        "cut-early.json": '{"displayTimeUnit":"ms","traceEvents":[\n{"ph":"M","na',
        "no-events.json": '{"displayTimeUnit":"ms"}',
        "missing-dur.json": '{"traceEvents":[{"ph":"X","name":"running","tid":1,"ts":0}]}',
        "wrong-type.json": '{"traceEvents":[{"ph":"X","name":"running","tid":1,"ts":"0","dur":1}]}',
        "deep.json": '{"traceEvents":[' + "[" * 100000 + "]" * 100000 + "]}",
        "bad-escape.json": '{"traceEvents":[{"ph":"X","name":"\\q","tid":1,"ts":0,"dur":1}]}',
        "trailing.json": '{"traceEvents":[]} {}',
    }
    for name, content in bad_files.items():
        path = os.path.join(tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        picture = os.path.join(tmp, "bad.svg")
        status, out_text, err = trace_view(path, "-o", picture)
        check(status == 1, f"{name}: exit 1, got {status} ({err})")
        check(err.count("\n") == 1 and err.startswith(f"trace-view: {path}: "), f"{name}: one line: {err!r}")
        check(not os.path.exists(picture), f"{name}: no picture written")
    huge = os.path.join(tmp, "huge.json")
    with open(huge, "wb") as f:
        f.truncate(513 << 20)  # sparse: nothing is written
    status, _, err = trace_view(huge, "-o", os.path.join(tmp, "huge.svg"))
    check(status == 1 and "over the 512 MiB limit" in err, f"a 513 MiB file is refused: {status} {err!r}")
    for missing in (os.path.join(tmp, "no-such.json"), tmp):
        status, _, err = trace_view(missing, "-o", os.path.join(tmp, "x.svg"))
        check(status == 1 and err.startswith(f"trace-view: {missing}: ") and err.count("\n") == 1,
              f"{missing}: exit 1, one line: {status} {err!r}")
    status, _, err = trace_view(traces[0], "-o", os.path.join(tmp, "no-such-dir", "x.svg"))
    check(status == 1 and "cannot create" in err, f"an output that cannot be created: {status} {err!r}")

    # Usage errors: exit 2.
    for args in (["-o", os.path.join(tmp, "out.png")], ["-o", os.path.join(tmp, "out")], [],
                 ["-o", os.path.join(tmp, "o.svg"), "--from", "2", "--to", "1"],
                 ["-o", os.path.join(tmp, "o.svg"), "--tasks", "0"],
                 ["-o", os.path.join(tmp, "o.svg"), "--from", "-1"]):
        status, _, err = trace_view(traces[0], *args)
        check(status == 2 and err != "", f"{args}: exit 2, got {status}")
    status, help_text, _ = trace_view("--help")
    check(status == 0 and all(o in help_text for o in ("--from", "--to", "--tasks", ".html", "512 MiB")),
          "--help names the options and the limit")

print(f"{len(traces)} traces checked, {failures} failures")
sys.exit(1 if failures else 0)
