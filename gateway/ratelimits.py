"""Per-key rate limits and daily quotas, in process or shared by every replica through Redis.

Counts are fixed windows kept by the ``limits`` library: in memory by default, or in
Redis (``NGSP_GATEWAY_REDIS_URL``), where each hit is one atomic increment, so several
gateway processes together admit exactly the limit, never more.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

__all__ = ["Decision", "KeyLimiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request, and the numbers for its ``RateLimit-*`` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    #: Which limit refused it: "rate" or "quota".
    exceeded: str | None

    def headers(self) -> dict[str, str]:
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            values["Retry-After"] = str(max(1, self.reset_seconds))
        return values


class KeyLimiter:
    """Checks a key's per-minute rate and daily quota with one hit on each."""

    def __init__(self, redis_url: str | None = None, *, prefix: str = "ngsp-gw") -> None:
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=prefix)
        else:
            self.storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(self.storage)

    async def hit(self, key_id: int, per_minute: int, per_day: int) -> Decision:
        """Count one request of a key; refused if either limit is spent."""
        ident = str(key_id)
        rate = RateLimitItemPerMinute(per_minute)
        quota = RateLimitItemPerDay(per_day)
        # The quota is checked first, so requests refused for the day do not spend the
        # minute's allowance; both counts are exact under concurrency.
        if not await self._limiter.hit(quota, ident):
            return await self._decision(quota, ident, allowed=False, exceeded="quota")
        if not await self._limiter.hit(rate, ident):
            return await self._decision(rate, ident, allowed=False, exceeded="rate")
        return await self._decision(rate, ident, allowed=True, exceeded=None)

    async def _decision(
        self,
        item: RateLimitItemPerMinute | RateLimitItemPerDay,
        ident: str,
        *,
        allowed: bool,
        exceeded: str | None,
    ) -> Decision:
        stats = await self._limiter.get_window_stats(item, ident)
        return Decision(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(0, math.ceil(stats.reset_time - time.time())),
            exceeded=exceeded,
        )

    async def close(self) -> None:
        """Release the Redis connections, if any."""
        if isinstance(self.storage, RedisStorage):
            client = getattr(self.storage, "storage", None)
            closer = getattr(client, "aclose", None) or getattr(client, "close", None)
            if closer is not None:
                result = closer()
                if hasattr(result, "__await__"):
                    await result

    async def ping(self) -> bool:
        return bool(await self.storage.check())

    async def reset(self) -> None:
        await self.storage.reset()
