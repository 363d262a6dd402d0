"""nginx for the model server: where its binary is, and its configuration filled in from the template.

The template (``inference/nginx.conf``) marks the values that change from run to run with placeholders,
upper-case names between ``@`` signs (``@PORT@``), so nginx's own ``$variables`` stay untouched.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf")
FALLBACK_BINARY = Path("/usr/sbin/nginx")  # Debian's place, often not on a non-root user's PATH
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
CLIENT_TIMEOUT_S = 10
"""How long nginx waits for a client between two reads of its headers or body, or two writes of the answer."""


class NginxNotFound(RuntimeError):
    """No nginx binary on PATH or at /usr/sbin/nginx."""


def find_nginx() -> Path:
    """The nginx binary: the one on PATH, else /usr/sbin/nginx; :class:`NginxNotFound` if neither exists."""
    on_path = shutil.which("nginx")
    if on_path:
        return Path(on_path)
    if os.access(FALLBACK_BINARY, os.X_OK):
        return FALLBACK_BINARY
    raise NginxNotFound(
        f"nginx not found on PATH or at {FALLBACK_BINARY}: install it (Debian/Ubuntu: apt-get install nginx)"
    )


def render(template: str, values: dict[str, object]) -> str:
    """``template`` with every ``@NAME@`` replaced by ``values[NAME]``; every placeholder needs a value."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"no value for nginx.conf placeholder(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def worker_user() -> str:
    """nginx's ``user`` directive naming this process's user and group when it is root, else nothing.

    nginx started as root runs its workers as ``nobody`` unless told otherwise; they must run as the
    user that owns gunicorn's socket, which only its owner may open.
    """
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def write_config(run_dir: Path, *, port: int, socket: Path, proxy_timeout: int, shutdown_timeout: int,
                 payload_limit: int) -> Path:
    """Fill in the template for one server and write it as ``run_dir/nginx.conf``; its path.

    ``payload_limit``: the largest request body in bytes; nginx answers a larger one 413 itself.
    """
    text = render(TEMPLATE.read_text(), {
        "PORT": port,
        "SOCKET": socket,
        "RUN_DIR": run_dir,
        "PROXY_TIMEOUT": proxy_timeout,
        "SHUTDOWN_TIMEOUT": shutdown_timeout,
        "PAYLOAD_LIMIT": payload_limit,
        "PAYLOAD_MB": f"{payload_limit / (1024 * 1024):g}",
        "CLIENT_TIMEOUT": CLIENT_TIMEOUT_S,
        "WORKER_USER": worker_user(),
    })
    path = run_dir / "nginx.conf"
    path.write_text(text)
    return path


def command(binary: Path, config: Path) -> list[str]:
    """The command line that runs nginx in the foreground (``daemon off`` is in the config) with ``config``."""
    return [str(binary), "-c", str(config)]
