"""Being a polite API client: a request-rate limit per token and retries with exponential backoff and jitter.

Every source connector sends its HTTP calls through ``Polite.call``: it waits for the token's rate limit, and
retries ``TransientError`` (rate-limit answers, 429, 5xx, timeouts) with full-jitter exponential backoff
(tenacity), honouring a wait the server asked for (``TransientError.retry_after``). Anything else is raised at
once. Clock and sleep are injectable so tests drive time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from shared.domain.errors import TransientError

T = TypeVar("T")


class RateLimit:
    """At most ``per_second`` calls in any one second: calls are spaced ``1 / per_second`` apart (a token bucket
    holding one token, so no burst ever exceeds the limit in a sliding window, which is how VK counts)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        # 5 % under the limit: network jitter must not make two calls 1/per_second apart look closer to VK.
        self.per_second = per_second * 0.95
        self.capacity = 1.0
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
            self.updated = now
            if self.tokens < 1:
                wait = (1 - self.tokens) / self.per_second
                self.sleep(wait)
                # The wait refilled exactly one token; count from the end of it (no float drift, no re-check loop).
                self.updated = now + wait
                self.tokens = 1.0
            self.tokens -= 1


class Polite:
    def __init__(
        self,
        rate: RateLimit | None,
        attempts: int = 5,
        base_seconds: float = 1.0,
        max_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.attempts = attempts
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.sleep = sleep
        self.retries = 0  # how many retries this client made: reported per source

    def call(self, fn: Callable[[], T]) -> T:
        jitter = wait_random_exponential(multiplier=self.base_seconds, max=self.max_seconds)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = exc.retry_after if isinstance(exc, TransientError) else None
            self.retries += 1
            return min(self.max_seconds, asked) if asked is not None else jitter(state)

        for attempt in Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        ):
            with attempt:
                if self.rate is not None:
                    self.rate.acquire()
                return fn()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
