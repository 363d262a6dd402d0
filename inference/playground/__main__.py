"""``python -m inference.playground --model-dir DIR [--items FILE] [--host H] [--port N]``: serve the page
until interrupted (Ctrl-C); ``--port 0`` takes a free port. The address is printed once it listens."""
from __future__ import annotations

import argparse
import sys

from werkzeug.serving import make_server

from inference.playground.app import create_playground
from inference.playground.catalogue import ItemsFileError, read_items_file
from model_code import artifacts

DEFAULT_PORT = 8765


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.playground", description=__doc__)
    parser.add_argument("--model-dir", required=True, help="a model directory (scorer.onnx, items.json, ...)")
    parser.add_argument("--items", help="optional CSV with a header row: item_id (required), name, category, "
                                        "image_url")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: a free one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        described = read_items_file(args.items) if args.items else None
        app = create_playground(args.model_dir, described)
        server = make_server(args.host, args.port, app, threaded=True)
    except (ItemsFileError, artifacts.ModelDirError, OSError) as err:
        print(f"playground: {err}", file=sys.stderr)
        return 2
    print(f"playground for {args.model_dir}: http://{args.host}:{server.port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
