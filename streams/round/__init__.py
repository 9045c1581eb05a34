"""One round of scoring, pure: the round's messages and its walk (scorer.py), no I/O.

Nothing here imports Redis, Kafka, Faust or aiohttp (``tests/unit/test_import_rules.py``).
"""

from streams.round.messages import Applied, OutputMessage, Record
from streams.round.scorer import RoundScorer, ScoredRound

__all__ = ["Applied", "OutputMessage", "Record", "RoundScorer", "ScoredRound"]
