"""Start the unCLIP Gradio app: `python app.py [--model PATH]` (also the Hugging Face Space's entry point)."""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry or version checks: the page works offline

from unclip_diffusers.app import UnCLIPService, build_demo, launch_kwargs, load_pipeline  # noqa: E402
from unclip_diffusers.app.torch_thread import TorchThread  # noqa: E402
from unclip_diffusers.app.ui import CONCURRENCY, QUEUE_SIZE  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a saved pipeline folder (default: the bundled release weights)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 to serve a network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="bf16 autocast of the denoising models (auto: on for trained weights on CPUs with native "
                             "bf16)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="simultaneous generations")
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="requests allowed to wait")
    parser.add_argument("--no-cache-examples", action="store_true", help="do not cache example outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    torch_thread = TorchThread()  # loads the pipeline and runs every request's torch work: one thread, measured faster
    loaded = torch_thread.call(load_pipeline, args.model, device=args.device, bf16=bf16)
    service = UnCLIPService(loaded.pipe, placeholder=loaded.placeholder, torch_thread=torch_thread)
    demo = build_demo(service, loaded.label, concurrency_limit=args.concurrency, queue_size=args.queue_size,
                      cache_examples=not args.no_cache_examples)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
