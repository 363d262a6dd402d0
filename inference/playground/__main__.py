"""``python -m inference.playground --model-dir DIR [--items FILE] [--host H] [--port N]``: serve the page
until interrupted (Ctrl-C); ``--port 0`` takes a free port. The address is printed once it listens.

With ``--api-url URL --guest-pool ID --guest-role ARN`` (a stage deployed with
``api_guest_identities=true``: its outputs RecommendationsUrl, GuestIdentityPoolId, GuestRoleArn) the page
sends its sessions to that stage's API as a Cognito guest; the catalogue, the popular list and the report
still come from DIR, which should hold the stage's model."""
from __future__ import annotations

import argparse
import sys

from werkzeug.serving import make_server

from inference.playground.app import GuestApi, create_playground
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
    deployed = parser.add_argument_group("a deployed stage's API, called as a guest (all three, or none)")
    deployed.add_argument("--api-url", help="the stack output RecommendationsUrl")
    deployed.add_argument("--guest-pool", help="the stack output GuestIdentityPoolId (REGION:UUID)")
    deployed.add_argument("--guest-role", help="the stack output GuestRoleArn")
    args = parser.parse_args(argv)
    given = [name for name in ("api_url", "guest_pool", "guest_role") if getattr(args, name)]
    if given and len(given) < 3:
        missing = sorted({"api_url", "guest_pool", "guest_role"} - set(given))
        parser.error(f"a deployed API needs --api-url, --guest-pool and --guest-role; missing: "
                     f"{', '.join('--' + name.replace('_', '-') for name in missing)}")
    if args.guest_pool and ":" not in args.guest_pool:
        parser.error(f"--guest-pool must be an identity pool id, REGION:UUID, not {args.guest_pool!r}")
    return args


def guest_api(args: argparse.Namespace) -> GuestApi | None:
    return GuestApi(args.api_url, args.guest_pool, args.guest_role) if args.api_url else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        described = read_items_file(args.items) if args.items else None
        app = create_playground(args.model_dir, described, guest_api(args))
        server = make_server(args.host, args.port, app, threaded=True)
    except (ItemsFileError, artifacts.ModelDirError, OSError) as err:
        print(f"playground: {err}", file=sys.stderr)
        return 2
    answers = f", answers from {args.api_url}" if args.api_url else ""
    print(f"playground for {args.model_dir}{answers}: http://{args.host}:{server.port}/ (Ctrl-C stops it)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
