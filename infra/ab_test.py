"""Two variants' hit rates compared: the difference, its confidence interval and whether it is clear.

A two-proportion comparison (the normal approximation): the difference of the hit rates B - A with a
Wald interval (unpooled standard error) and a two-sided z-test under the pooled rate. Each followed
answer counts as one trial; answers of one session are not independent, so a shop with many answers
per session reads the interval as somewhat too narrow. The approximation needs enough hits and misses
in each arm: below :data:`MIN_OUTCOMES` of either (at the pooled rate) the verdict is that the sample is
too small, whatever the interval says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

MIN_OUTCOMES = 10
"""Expected hits and misses each arm needs at the pooled rate for the normal approximation to hold."""
CLEAR, NO_CLEAR_DIFFERENCE, TOO_SMALL = "clear", "no clear difference", "sample too small"


@dataclass(frozen=True)
class Arm:
    """One variant's followed answers (``trials``) and hits."""

    name: str
    hits: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.trials if self.trials else None


@dataclass(frozen=True)
class Comparison:
    a: Arm
    b: Arm
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    verdict: str
    confidence: float

    @property
    def better(self) -> str | None:
        """The variant with the clearly higher hit rate, else None."""
        if self.verdict != CLEAR:
            return None
        return self.b.name if self.difference > 0 else self.a.name

    def sentence(self) -> str:
        if self.verdict == TOO_SMALL:
            return (f"{self.b.name} vs {self.a.name}: sample too small ({self.a.trials} and {self.b.trials} followed "
                    f"answers; each arm needs {MIN_OUTCOMES} expected hits and misses)")
        interval = (f"{self.difference:+.4f} ({self.confidence:.0%} CI {self.low:+.4f} to {self.high:+.4f}, "
                    f"p = {self.p_value:.3g})")
        if self.verdict == CLEAR:
            return f"hit rate {self.b.name} - {self.a.name}: {interval}: {self.better} is clearly better"
        return f"hit rate {self.b.name} - {self.a.name}: {interval}: no clear difference yet"


def compare(a: Arm, b: Arm, confidence: float = 0.95) -> Comparison:
    """B's hit rate less A's, with its interval and verdict."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: between 0 and 1, got {confidence}")
    for arm in (a, b):
        if not 0 <= arm.hits <= arm.trials:
            raise ValueError(f"{arm.name}: hits ({arm.hits}) must lie between 0 and the trials ({arm.trials})")
    if not a.trials or not b.trials:
        return Comparison(a, b, None, None, None, None, TOO_SMALL, confidence)
    pa, pb = a.rate, b.rate
    difference = pb - pa
    z_critical = NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = math.sqrt(pa * (1 - pa) / a.trials + pb * (1 - pb) / b.trials)
    low, high = difference - z_critical * spread, difference + z_critical * spread
    pooled = (a.hits + b.hits) / (a.trials + b.trials)
    pooled_spread = math.sqrt(pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials))
    p_value = math.erfc(abs(difference) / pooled_spread / math.sqrt(2)) if pooled_spread else 1.0
    enough = all(n * share >= MIN_OUTCOMES for n in (a.trials, b.trials) for share in (pooled, 1 - pooled))
    if not enough:
        verdict = TOO_SMALL
    elif low > 0 or high < 0:
        verdict = CLEAR
    else:
        verdict = NO_CLEAR_DIFFERENCE
    return Comparison(a, b, difference, low, high, p_value, verdict, confidence)
