"""Load test of the app: start `python app.py` on 127.0.0.1, send N concurrent text-to-image requests, report latency.

Every visitor must get images or a clear busy message; the script prints how many got each, p50/p95/max latency over
the answered ones (from the click: each visitor's client connects first, as a browser has the page open), the
slowest connection, and the server process's peak RSS (VmHWM), and writes them as JSON:

    python benchmarks/bench_app_load.py --visitors 20 --output benchmarks/results/app_load.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from _common import MALLOC_ENV, machine_info, write_json

from unclip_diffusers.app.load_test import fire_requests, summarize_outcomes

ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder (default: the bundled release)")
    parser.add_argument("--visitors", type=int, default=20, help="concurrent requests")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--prompt", default="a cat")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a visitor waits before giving up")
    parser.add_argument("--server-env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="environment of the server on top of the tuned allocator's (e.g. MALLOC_ARENA_MAX=2); "
                             "KEY= removes KEY")
    parser.add_argument("--app-args", nargs=argparse.REMAINDER, default=[], help="further arguments for app.py")
    parser.add_argument("--output", default="benchmarks/results/app_load.json")
    return parser


def wait_for_page(url: str, server: subprocess.Popen, seconds: float = 600.0) -> float:
    """Seconds until the page answers HTTP 200 (the app warms up before it listens); raise if the server died."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited with code {server.returncode} before serving the page")
        try:
            with urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no page at {url} after {seconds:.0f} s")


def peak_rss_of(pid: int) -> float:
    """Peak resident set size (VmHWM) of process `pid`, in GiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**20


def default_arguments(url: str, prompt: str) -> list:
    """The /text_to_image arguments as the page would send them: its own defaults, with `prompt` and a fixed seed."""
    from gradio_client import Client

    info = Client(url, verbose=False, download_files=False).view_api(print_info=False, return_format="dict")
    parameters = info["named_endpoints"]["/text_to_image"]["parameters"]
    values = [p.get("parameter_default") for p in parameters]
    values[0], values[1], values[2] = prompt, 1, False  # prompt, seed, randomize_seed
    return values


def server_environment(overrides: list[str]) -> dict[str, str]:
    """This process's environment with the tuned allocator's settings and `KEY=VALUE` overrides (`KEY=` removes)."""
    env = {**os.environ, **MALLOC_ENV}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--server-env takes KEY=VALUE items, got {item!r}.")
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(args.port), "--no-cache-examples", *args.app_args]
    if args.model:
        command += ["--model", args.model]
    url = f"http://127.0.0.1:{args.port}"
    env = server_environment(args.server_env)
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        startup_s = wait_for_page(url, server)
        request = default_arguments(url, args.prompt)
        warm = fire_requests(url, 1, request, timeout=args.timeout)[0]  # one visitor alone: the idle latency
        outcomes = fire_requests(url, args.visitors, request, timeout=args.timeout)
        summary = summarize_outcomes(outcomes)
        summary.update(single_request_s=warm.seconds, startup_s=startup_s, peak_rss_gib=peak_rss_of(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{args.visitors} visitors: {summary['ok']} got images, {summary['busy']} a busy message, "
          f"{summary['failed']} failed; answered p50 {summary.get('p50_s', float('nan')):.2f} s, "
          f"p95 {summary.get('p95_s', float('nan')):.2f} s, max {summary.get('max_s', float('nan')):.2f} s; "
          f"alone {warm.seconds:.2f} s; slowest connection (before the click) {summary['connect_max_s']:.2f} s; "
          f"server peak RSS {summary['peak_rss_gib']:.2f} GiB")
    server_env = {key: env.get(key) for key in sorted({*MALLOC_ENV, *(i.partition("=")[0] for i in args.server_env)})}
    write_json({"machine": machine_info(0), "visitors": args.visitors, "request": request[:4],
                "server_env": server_env, "app_args": args.app_args, **summary},
               args.output)


if __name__ == "__main__":
    main()
