"""Exact Poisson and binomial draws from a seeded ``random.Random``, in pure Python.

Python 3.11's ``random`` has neither (``binomialvariate`` arrived in 3.12), and numpy is
not a dependency of the project. Both use Hörmann's transformed rejection with squeeze
(PTRS for Poisson, 1993; BTRS for binomial, 1993), which costs a few uniform numbers
whatever the mean, and inversion for small means. The streams depend only on the seed,
so a run is reproducible on any platform.
"""

from __future__ import annotations

import math
import random

__all__ = ["binomial", "multinomial", "poisson"]

_log = math.log
_sqrt = math.sqrt
_floor = math.floor
_lgamma = math.lgamma
_exp = math.exp


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson-distributed count with mean ``lam``."""
    if lam <= 0.0:
        return 0
    if lam < 10.0:
        # Inversion: walk the cumulative distribution.
        u = rng.random()
        k = 0
        p = _exp(-lam)
        s = p
        while u > s:
            k += 1
            p *= lam / k
            s += p
            if k > 1000:  # floating-point tail; unreachable for lam < 10 in practice
                break
        return k
    slam = _sqrt(lam)
    loglam = _log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = _floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k)
        if k < 0 or (us < 0.013 and v > us):
            continue
        if _log(v) + _log(inv_alpha) - _log(a / (us * us) + b) <= (
            -lam + k * loglam - _lgamma(k + 1.0)
        ):
            return int(k)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """The number of successes in ``n`` trials of probability ``p``."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:
        # Count geometric waiting times between successes.
        c = _log(1.0 - p)
        x = 0
        y = 0
        while True:
            y += _floor(_log(1.0 - rng.random()) / c) + 1
            if y > n:
                return x
            x += 1
    spq = _sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = _log(p / (1.0 - p))
    m = _floor((n + 1) * p)
    h = _lgamma(m + 1.0) + _lgamma(n - m + 1.0)
    while True:
        u = rng.random() - 0.5
        us = 0.5 - abs(u)
        k = _floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = rng.random()
        if us >= 0.07 and v <= vr:
            return int(k)
        v *= alpha / (a / (us * us) + b)
        if _log(v) <= h - _lgamma(k + 1.0) - _lgamma(n - k + 1.0) + (k - m) * lpq:
            return int(k)


def multinomial(rng: random.Random, n: int, shares: tuple[float, ...]) -> list[int]:
    """Split ``n`` into ``len(shares)`` counts; the shares add up to at most 1 and the
    remainder goes to a last, extra count."""
    counts = []
    left = n
    rest = 1.0
    for share in shares:
        if left == 0 or share <= 0.0:
            counts.append(0)
        else:
            k = left if share >= rest else binomial(rng, left, share / rest)
            counts.append(k)
            left -= k
        rest -= share
    counts.append(left)
    return counts
