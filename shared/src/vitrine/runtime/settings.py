"""Settings from the environment (``VITRINE_*``), one class for every service.

Embedded-stack defaults run out of the box; production switches (idempotent producer,
SASL/TLS, replica-set URL) are configuration, never code edits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.runtime.standins import BrokerProfile, KafkaStandin, broker_profile

#: Default HTTP port of each service on one machine; containers all use 8000.
DEFAULT_PORTS = {
    "catalog": 8001,
    "review": 8002,
    "showcase": 8003,
    "distribution": 8004,
    "compliance": 8005,
    "live": 8006,
    "selection": 8007,
    "dashboard": 8008,
}


class Settings(BaseSettings):
    """What every service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="VITRINE_", extra="ignore")

    service: str = "vitrine"
    #: This process among the service's replicas (e.g. the pod name); keeps per-process
    #: state files apart when replicas share a machine.
    instance: str = ""
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: The embedded stand-in broker, if that is what this is (``vitrine.runtime.standins``);
    #: ``none`` (production, Apache Kafka) keeps every client setting at its plain value.
    kafka_standin: KafkaStandin = "none"
    #: Idempotent producer; unset = wherever the broker supports it (not Tansu).
    kafka_idempotent: bool | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    #: journal=true: nx-27017 lost acknowledged w:1 writes on kill -9 without it.
    mongo_url: str = "mongodb://127.0.0.1:27017/?journal=true"
    mongo_db: str | None = None
    #: The Kafka consumer group (default: the service's name). A new group reads every input
    #: from the beginning: how a service is rebuilt from its inputs into an empty database.
    consumer_group: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    #: Records per batch a subscriber takes; throughput comes from batching (DESIGN.md §1).
    batch_max_records: int = 500
    #: How long a fetch may wait for data; unset = the broker profile's (500 ms on Kafka,
    #: which answers as soon as data arrives; 20 ms on Tansu, which parks fetches).
    fetch_max_wait_ms: int | None = None
    #: How long a fetch that names every assigned partition may wait; unset = the broker
    #: profile's (3 s on Kafka: nothing waits behind such a fetch; Tansu: its 20 ms).
    idle_fetch_wait_ms: int | None = None
    #: How long the subscriber's poll waits for fetched records before it looks again. A
    #: fetch that brings records ends the wait at once, so this costs no latency; it only
    #: bounds how late an idle service notices a consumer-group error (and how often it
    #: wakes for nothing). 0 = FastStream's own loop (200 ms poll, then 200 ms asleep).
    poll_wait_ms: int = 5000
    #: aiokafka's ``consumer_timeout_ms``: the longest its fetch routine sleeps between looks
    #: at every assigned partition. Every event it acts on (a fetch answered, records
    #: consumed, a seek, a rebalance, a metadata change) wakes it anyway; its default of
    #: 200 ms made an idle service scan its partitions twice per 500 ms fetch for nothing.
    consumer_timeout_ms: int = 1000
    #: When a poll returns records that were already prefetched, how long to poll once more
    #: for the ones that piled up behind them (``vitrine.runtime.messaging.subscriber``):
    #: under load, one batch cycle less per hop. Unset = the broker profile's (5 ms on Kafka,
    #: 0 on Tansu); 0 = take the prefetched records alone.
    poll_gather_ms: int | None = None
    #: Commit each applied batch's offsets while the next one is fetched and applied, one
    #: request in flight (``vitrine.runtime.messaging.commits``); False = FastStream's ack,
    #: which waits for the commit (13 ms of each ~80 ms batch cycle under P3's load). Only with
    #: the waiting subscriber (``poll_wait_ms`` > 0), which settles the commits at stop.
    commit_in_background: bool = True
    max_message_bytes: int = 256 * 1024
    #: Give up retrying a handler error that is not transient after this many tries → DLQ.
    handler_max_attempts: int = 3
    otel_enabled: bool = False

    @property
    def broker(self) -> BrokerProfile:
        """How clients talk to this broker (stand-in compensations, if any)."""
        return broker_profile(self.kafka_standin)

    @property
    def idempotent_producer(self) -> bool:
        """The idempotent producer: on wherever the broker supports it, unless set."""
        if self.kafka_idempotent is None:
            return self.broker.idempotent_producer
        return self.kafka_idempotent

    @property
    def fetch_wait_ms(self) -> int:
        """The consumer's fetch max wait: the setting, else the broker profile's."""
        return self.fetch_max_wait_ms or self.broker.fetch_max_wait_ms

    @property
    def poll_gather(self) -> int:
        """How long to gather behind prefetched records: the setting, else the profile's."""
        return self.broker.poll_gather_ms if self.poll_gather_ms is None else self.poll_gather_ms

    @property
    def idle_fetch_wait(self) -> int:
        """The wait of a fetch naming every partition: the setting, else the profile's."""
        return self.idle_fetch_wait_ms or self.broker.idle_fetch_wait_ms

    @property
    def database(self) -> str:
        """This service's own MongoDB database (no service reads another's)."""
        return self.mongo_db or self.service

    @property
    def group(self) -> str:
        """This service's consumer group."""
        return self.consumer_group or self.service

    @property
    def port(self) -> int:
        return self.http_port or DEFAULT_PORTS.get(self.service, 8000)

    def faststream_security(self) -> Any:
        """The same credentials as FastStream's security object (None for PLAINTEXT)."""
        from faststream.security import (
            BaseSecurity,
            SASLPlaintext,
            SASLScram256,
            SASLScram512,
        )

        args = self.kafka_client_args()
        ssl = args.get("ssl_context")
        if not self.kafka_sasl_mechanism:
            return BaseSecurity(ssl_context=ssl) if ssl else None
        sasl = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[self.kafka_sasl_mechanism]
        return sasl(
            username=args["sasl_plain_username"],
            password=args.get("sasl_plain_password", ""),
            ssl_context=ssl,
        )

    def kafka_client_args(self) -> dict[str, Any]:
        """Security arguments shared by producers, consumers and admin clients."""
        args: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            args["sasl_mechanism"] = self.kafka_sasl_mechanism
            args["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                args["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            args["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        return args
