"""Start-up hook for tests that kill a training run at a known point (Python imports ``sitecustomize`` at
start-up from any folder on PYTHONPATH; this folder is put there by those tests alone).

With ``PAUSE_AFTER_CHECKPOINT`` set to a file path, the first checkpoint a run saves is followed by a pause:
the run creates that file and waits for a signal. The test sees the file and kills the run, which has
then done exactly one epoch, however fast or slow the machine is.
"""
import os
import signal
from pathlib import Path

from model_code.commands import checkpoints

_save_checkpoint = checkpoints.save_checkpoint


def _save_then_pause(directory, checkpoint):
    _save_checkpoint(directory, checkpoint)
    Path(os.environ["PAUSE_AFTER_CHECKPOINT"]).touch()
    while True:
        signal.pause()


if os.environ.get("PAUSE_AFTER_CHECKPOINT"):
    checkpoints.save_checkpoint = _save_then_pause
