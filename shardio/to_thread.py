"""Running blocking code in worker threads (Trio's ``trio.to_thread``)."""

from ._threads import current_default_thread_limiter, run_sync

__all__ = ["current_default_thread_limiter", "run_sync"]
