"""Sharded services: one instance of a class per shard (Seastar's ``sharded<T>``).

``async with shardio.sharded(Factory, *args) as svc`` builds
``Factory(*args)`` on every shard, on that shard (so each instance's state is
local to its core: nothing shared, nothing locked). Inside the block,
``svc.local()`` is this shard's instance, and ``svc.invoke_on(k, fn, ...)``
runs ``fn(instance_k, ...)`` on shard ``k``. On exit, every instance's
``aclose()`` (if it has one) runs on its own shard -- also when the block
failed or was cancelled.

The ``svc`` handle is plain data (the service's id): pass it to code on any
shard, and ``svc.local()`` there gives that shard's instance.

Built only on the public API: ``run_on`` carries every call, so deadlines,
cancellation and exceptions cross shards as they do for any call.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from ._core import CancelScope, current_shard, open_nursery, run_on, shard_count

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")

# This shard's instances of the services now running: service id -> instance.
_INSTANCES: dict[tuple[int, int], Any] = {}
_IDS = itertools.count()


async def _await_if_needed(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _start(sid: tuple[int, int], factory: Callable[..., Any], args: tuple[Any, ...]) -> None:
    _INSTANCES[sid] = await _await_if_needed(factory(*args))


async def _stop(sid: tuple[int, int]) -> None:
    instance = _INSTANCES.pop(sid, None)
    aclose = getattr(instance, "aclose", None)
    if aclose is not None:
        await _await_if_needed(aclose())


async def _invoke(sid: tuple[int, int], fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        instance = _INSTANCES[sid]
    except KeyError:
        raise RuntimeError(
            f"the sharded service {sid} is not running on shard {current_shard()} "
            "(its 'async with sharded(...)' block has ended)"
        ) from None
    return await _await_if_needed(fn(instance, *args))


class Sharded(Generic[T]):
    """A handle on a service with one instance per shard; see :func:`sharded`."""

    __slots__ = ("_sid",)

    def __init__(self, sid: tuple[int, int]) -> None:
        self._sid = sid

    def __repr__(self) -> str:
        return f"<shardio.Sharded service {self._sid}>"

    def __reduce__(self) -> Any:
        return (Sharded, (self._sid,))

    def local(self) -> T:
        """This shard's instance."""
        try:
            instance: T = _INSTANCES[self._sid]
        except KeyError:
            raise RuntimeError(
                f"the sharded service {self._sid} is not running on shard {current_shard()} "
                "(its 'async with sharded(...)' block has ended)"
            ) from None
        return instance

    async def invoke_on(self, shard: int, fn: Callable[..., Awaitable[R] | R], *args: Any) -> R:
        """Run ``fn(instance, *args)`` on ``shard``, with that shard's
        instance, and return the result (as :func:`run_on` does)."""
        result: R = await run_on(shard, _invoke, self._sid, fn, args)
        return result

    async def invoke_on_all(self, fn: Callable[..., Awaitable[R] | R], *args: Any) -> list[R]:
        """:meth:`invoke_on` every shard at once; the results in shard order.

        If one fails, the others are cancelled and the error propagates (as
        an exception group, as from any nursery).
        """
        results: list[Any] = [None] * shard_count()

        async def one(shard: int) -> None:
            results[shard] = await self.invoke_on(shard, fn, *args)

        async with open_nursery() as nursery:
            for shard in range(shard_count()):
                nursery.start_soon(one, shard)
        return results

    async def map_reduce(
        self,
        fn: Callable[..., Awaitable[R] | R],
        reducer: Callable[[A, R], A],
        initial: A,
    ) -> A:
        """``fn(instance)`` on every shard at once, folded with
        ``reducer(accumulator, result)`` from ``initial``, in shard order."""
        accumulator = initial
        for result in await self.invoke_on_all(fn):
            accumulator = reducer(accumulator, result)
        return accumulator


@asynccontextmanager
async def sharded(
    factory: Callable[..., T | Awaitable[T]], *args: Any
) -> AsyncIterator[Sharded[T]]:
    """Build ``factory(*args)`` on every shard; yield the service's handle.

    ``factory`` may be a class, a function, or an async function; it runs
    on each shard (concurrently), so it must be picklable like any
    cross-shard call. If it fails on any shard, the instances already built
    are closed and the error propagates. On exit, each instance's
    ``aclose()`` -- if defined, sync or async -- runs on its shard, shielded
    from cancellation, so cleanup happens even when the block was cancelled.
    """
    sid = (current_shard(), next(_IDS))
    count = shard_count()
    try:
        async with open_nursery() as nursery:
            for shard in range(count):
                nursery.start_soon(run_on, shard, _start, sid, factory, args)
        yield Sharded(sid)
    finally:
        with CancelScope(shield=True):
            async with open_nursery() as nursery:
                for shard in range(count):
                    nursery.start_soon(run_on, shard, _stop, sid)
