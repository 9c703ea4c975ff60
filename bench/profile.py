"""Where a running registry spends its time on one URL: py-spy on its process tree under wrk.

    python bench/profile.py --pid PID URL [--seconds 8] [--top 25]

PID is the server's main process (all descendants are sampled too); URL gets 32 concurrent
clients from wrk while py-spy samples the thread holding the GIL (Python CPU time; waiting
threads and Granian's Rust side are not counted). Prints the functions with the most
samples, by self time and by inclusive time, as `file:function`.
Needs `pip install py-spy` and wrk. For the loader (cold index), use instead:
    py-spy record --subprocesses -f raw -o load.txt -- python -m fleetgap serve --dry-run ...
    python bench/profile.py --summarise load.txt
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import process_tree  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--summarise", type=Path, help="summarise a py-spy raw file instead")
    args = parser.parse_args(argv)
    if args.summarise:
        print_summary(args.summarise.read_text().splitlines(), args.top)
        return 0
    if not (args.url and args.pid):
        parser.error("URL and --pid are needed")
    lines = profile(args.pid, args.url, args.seconds, args.connections)
    print_summary(lines, args.top)
    return 0


def profile(pid: int, url: str, seconds: int, connections: int) -> list[str]:
    """Folded stacks of every Python process in the tree while wrk loads `url`."""
    pids = [p for p in process_tree(pid) if _is_python(p)]
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{p}.txt" for p in pids]
        spies = [
            subprocess.Popen(
                ["py-spy", "record", "--pid", str(p), "-d", str(seconds), "-f", "raw"]
                + ["-r", "200", "-o", str(out), "--nonblocking", "--gil"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for p, out in zip(pids, outs, strict=True)
        ]
        wrk = ["wrk", "-t1", f"-c{connections}", f"-d{seconds + 2}s", url]
        subprocess.run(wrk, capture_output=True, timeout=seconds + 60)
        for spy in spies:
            spy.wait(timeout=60)
        return [line for out in outs if out.exists() for line in out.read_text().splitlines()]


def print_summary(lines: list[str], top: int) -> None:
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        if not frames:
            continue
        total += count
        self_count[frames[-1]] += count
        for frame in set(frames):
            incl_count[frame] += count
    if not total:
        print("no samples (is the process a Python process? py-spy needs ptrace)")
        return
    print(f"{total} samples\n\nself time:")
    for frame, count in self_count.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")
    print("\ninclusive time (fleetgap, starlette and granian frames):")
    ours = [
        (f, c)
        for f, c in incl_count.most_common()
        if any(k in f for k in ("fleetgap", "starlette", "granian")) and not f.startswith(_BOOT)
    ]
    for frame, count in ours[:top]:
        print(f"  {count / total:6.1%}  {frame}")


# process bootstrap frames: in every sample, so not informative
_BOOT = ("granian/server/", "fleetgap/cli/", "fleetgap/__main__.py", "fleetgap/server.py:")


def _short(frame: str) -> str:
    """`function (path/file.py:12)` -> `path/file.py:function` (py-spy already shortens paths)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if "/fleetgap/" in path:
        path = "fleetgap/" + path.split("/fleetgap/", 1)[1]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return f"{path}:{name}"


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/exe").resolve().name
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
