"""Everything the workers keep in Redis, and the one place its keys are spelled.

Import what you need from its module; this package re-exports the pieces a deployment uses.
"""

from streams.state.due_index import DueIndex
from streams.state.keys import Layout
from streams.state.profiles import RedisProfileStore, connect_redis
from streams.state.query_index import CustomerIndex, RoundIndexer
from streams.state.round_store import RoundStore

__all__ = [
    "CustomerIndex",
    "DueIndex",
    "Layout",
    "RedisProfileStore",
    "RoundIndexer",
    "RoundStore",
    "connect_redis",
]
