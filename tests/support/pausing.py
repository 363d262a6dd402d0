"""Kill a training run right after its first checkpoint, deterministically (see pause_after_checkpoint/)."""
import os
import subprocess
import tempfile
import time
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "pause_after_checkpoint"
REPO_ROOT = HOOK_DIR.parents[2]


def kill_after_first_checkpoint(argv: list[str], env: dict, marker: Path, timeout: float = 600) -> None:
    """Run ``argv`` with the pause hook, wait until it has saved its first checkpoint and paused, SIGKILL it.

    Fails if the run ends before pausing (it saved no checkpoint) or does not pause within ``timeout``.
    """
    python_path = os.pathsep.join(filter(None, [str(HOOK_DIR), str(REPO_ROOT), env.get("PYTHONPATH")]))
    env = dict(env, PYTHONPATH=python_path, PAUSE_AFTER_CHECKPOINT=str(marker))
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while not marker.exists() and process.poll() is None:
                assert time.monotonic() < deadline, f"no checkpoint within {timeout:.0f} s"
                time.sleep(0.05)
        finally:
            process.kill()
            process.wait()
        log.seek(0)
        assert marker.exists(), (f"the run ended with exit code {process.returncode} before its first "
                                 f"checkpoint:\n{log.read()[-3000:]}")
