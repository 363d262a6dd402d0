"""Which context keys are this app's settings, so that a mistyped one is refused rather than ignored.

The context also holds the CDK's own keys, which are left alone: feature flags (``@aws-cdk/...``),
the keys the CDK CLI injects (``aws:cdk:...``), context look-ups cached in ``cdk.context.json``
(``availability-zones:account=...``) and the CLI's notes such as ``acknowledged-issue-numbers``.
None of them is a snake_case word; every setting of this app is. So a snake_case key that is not a
setting is a mistake: ``stgae``, ``endpoint_instanse_type``.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

APP_LOOKING_KEY = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def unknown_settings(keys: Iterable[str], settings: Iterable[str]) -> list[tuple[str, str | None]]:
    """(key, the closest setting or None) for each key that looks like a setting but is not one."""
    settings = sorted(settings)
    return [
        (key, next(iter(difflib.get_close_matches(key, settings, n=1, cutoff=0.6)), None))
        for key in keys
        if APP_LOOKING_KEY.fullmatch(key) and key not in settings
    ]
