"""Bank integration adapters: parse bank and fintech inputs into canonical events for Kafka.

`adapters.parsers` holds one module per input format (registered by name, see
`get_parser`), `adapters.producer` the Kafka producer, `adapters.cli` the `dfip ingest`
command and `adapters.simulator` the synthetic province feed.
"""

from adapters.accounts import (
    AccountDirectory,
    AccountMapError,
    MissingKeyError,
    account_hash_key,
    pseudonymise_account,
)
from adapters.base import (
    ParseContext,
    Parser,
    ParseResult,
    ParseStats,
    Rejected,
    available_formats,
    get_parser,
    register,
)
from adapters.producer import DeliveryError, DeliveryReport, EventProducer, KafkaUnavailable

__all__ = [
    "AccountDirectory",
    "AccountMapError",
    "DeliveryError",
    "DeliveryReport",
    "EventProducer",
    "KafkaUnavailable",
    "MissingKeyError",
    "ParseContext",
    "ParseResult",
    "ParseStats",
    "Parser",
    "Rejected",
    "account_hash_key",
    "available_formats",
    "get_parser",
    "pseudonymise_account",
    "register",
]
