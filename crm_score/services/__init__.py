"""Local Kafka and Redis for development and CI, started without Docker.

``crm-score services up`` fetches Apache Kafka's jars from Maven Central (cached), formats KRaft
storage and starts one broker; it installs Debian's ``redis-server`` if missing and starts it with
AOF on. ``--redis-cluster 3`` / ``--kafka-brokers 3`` start a Redis Cluster / replicated brokers
instead (:mod:`~crm_score.services.redis_cluster`, :mod:`~crm_score.services.kafka_cluster`).
Data and logs live in ``.services/`` (git-ignored). ``down`` stops exactly the processes
that ``up`` started, by their PID files.
"""

from crm_score.services._process import free_port
from crm_score.services.kafka import KAFKA_VERSION, LocalKafka
from crm_score.services.kafka_cluster import LocalKafkaCluster
from crm_score.services.redis import LocalRedis
from crm_score.services.redis_cluster import LocalRedisCluster

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalRedis",
    "LocalRedisCluster",
    "free_port",
]
