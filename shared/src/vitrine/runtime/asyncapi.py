"""A service's AsyncAPI 3.0 document as the wire really is (docs/CONTRACT.md).

FastStream generates the skeleton from the broker's declared subscriber and publishers:
channels, operations and the payload schemas of the event models. It knows nothing of what
the records carry besides the value, so :func:`describe` adds it: the content type, the
headers the outbox and the DLQ really set, the Kafka key, partitions and consumer group, where
the correlation id is, what a dead letter holds, and the reason-code enumerations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, cast

from vitrine.contract.envelope import CONTENT_TYPE
from vitrine.contract.reasons import DEAD_LETTER_REASONS, CodeSet, code_sets_for
from vitrine.contract.topics import DLQ_SUFFIX, TOPICS

#: The Kafka bindings version of AsyncAPI 3.0 (channel partitions, operation groupId, key).
KAFKA_BINDING_VERSION = "0.5.0"
#: ``vitrine topics ensure`` creates each dead-letter topic with one partition.
DLQ_PARTITIONS = 1
CONTRACT = "docs/CONTRACT.md"

Schema = dict[str, Any]

_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
_CORRELATION_ID = {
    "description": "The envelope's `correlationid` extension: the id of the first event of "
    "the chain, propagated to every event it causes.",
    "location": "$message.payload#/correlationid",
}


def describe(
    generated: Schema, *, service: str, inputs: Sequence[str], publishes: Sequence[str]
) -> Schema:
    """``generated`` (FastStream's document as JSON) completed with what is on the wire."""
    doc = copy.deepcopy(generated)
    doc["defaultContentType"] = CONTENT_TYPE
    doc["info"]["description"] = (
        f"{doc['info'].get('description', '')} Every record is one CloudEvents 1.0 event in "
        "structured mode (JSON, `content-type: application/cloudevents+json`), keyed by its "
        f"`subject`. The whole contract: {CONTRACT} in the repository."
    ).strip()
    schemas: Schema = doc["components"]["schemas"]
    messages: Schema = doc["components"]["messages"]
    _enumerate_reason_codes(schemas)

    for name, channel in doc["channels"].items():
        address = channel["address"]
        (message_ref,) = [m["$ref"] for m in channel["messages"].values()]
        message = messages[message_ref.rsplit("/", 1)[1]]
        if address.endswith(DLQ_SUFFIX):
            origin = address.removesuffix(DLQ_SUFFIX)
            _dead_letter_channel(channel, message, origin, service, messages, doc)
        elif address in inputs and name.startswith(f"{service}:consume:"):
            _event_channel(channel, message, address, produced_here=False)
        elif address in publishes:
            _event_channel(channel, message, address, produced_here=True)

    for operation in doc["operations"].values():
        binding: Schema = {
            "clientId": {"type": "string", "enum": [f"vitrine-{service}"]},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
        if operation["action"] == "receive":
            binding = {"groupId": {"type": "string", "enum": [service]}, **binding}
            operation["description"] = (
                f"Consumer group `{service}` reads the topic at least once, in batches; "
                "offsets are committed only after the batch's effects are durable."
            )
        else:
            operation["description"] = (
                "Sent by the outbox relay (acks=all) after the causing transaction committed; "
                "a crash may resend, consumers dedupe on (source, id)."
                if operation["channel"]["$ref"].rsplit("/", 1)[1].split(":")[0] in publishes
                else "Sent by the consumer for a record it cannot process, before the "
                "record's offset is committed."
            )
        operation["bindings"] = {"kafka": binding}
    return doc


def _channel_binding(address: str, partitions: int, configs: dict[str, str]) -> Schema:
    binding: Schema = {
        "topic": address,
        "partitions": partitions,
        "bindingVersion": KAFKA_BINDING_VERSION,
    }
    if "retention.ms" in configs:
        binding["topicConfiguration"] = {"retention.ms": int(configs["retention.ms"])}
    return {"kafka": binding}


def _event_channel(channel: Schema, message: Schema, address: str, *, produced_here: bool) -> None:
    topic = TOPICS[address]
    types = list(topic.types)
    channel["bindings"] = _channel_binding(address, topic.partitions, topic.configs)
    who = "this service publishes" if produced_here else f"published by {topic.producer}"
    channel["description"] = (
        f"{topic.description}: {who}. Key: `{topic.key}` (== the event's `subject`), so one "
        f"aggregate's events stay in order on one of {topic.partitions} partition(s). "
        f"Types: {', '.join(types)}."
    )
    message["contentType"] = CONTENT_TYPE
    message["correlationId"] = dict(_CORRELATION_ID)
    message["summary"] = f"A CloudEvent on {address}, one of: {', '.join(types)}."
    message["headers"] = _outbox_headers(types) if produced_here else _input_headers()
    message["bindings"] = {
        "kafka": {
            "key": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "pattern": _ID_PATTERN,
                "description": f"The {topic.key}: the event's `subject`, UTF-8. A record whose "
                "key is not its subject is dead-lettered (`key_mismatch`).",
            },
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def _outbox_headers(types: list[str]) -> Schema:
    """What ``vitrine.runtime.messaging.outbox`` sets on every record it sends."""
    copy_of = "A copy of the envelope's `{0}`, for tools that filter without parsing the value; "
    copy_of += "the value is authoritative and no consumer reads this header."
    return {
        "type": "object",
        "properties": {
            "content-type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": "CloudEvents structured mode, JSON event format.",
            },
            "ce-type": {"type": "string", "enum": types, "description": copy_of.format("type")},
            "ce-subject": {"type": "string", "description": copy_of.format("subject")},
            "ce-id": {"type": "string", "description": copy_of.format("id")},
            "ce-correlationid": {
                "type": "string",
                "description": copy_of.format("correlationid") + " Absent when it has none.",
            },
        },
        "required": ["content-type", "ce-type", "ce-subject", "ce-id"],
        "description": "Vitrine convenience headers: not CloudEvents Kafka binary-mode "
        "attributes (those are `ce_`-prefixed); see docs/DECISIONS.md.",
    }


def _input_headers() -> Schema:
    return {
        "type": "object",
        "properties": {
            "content-type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": "Producers should set it (CloudEvents structured mode). The "
                "consumers read only the value: headers are neither required nor checked.",
            }
        },
        "additionalProperties": True,
    }


def _dead_letter_channel(
    channel: Schema,
    message: Schema,
    origin: str,
    service: str,
    messages: Schema,
    doc: Schema,
) -> None:
    channel["bindings"] = _channel_binding(channel["address"], DLQ_PARTITIONS, {})
    channel["description"] = (
        f"Dead letters of {origin} that {service} cannot process: each is the original "
        "record — key, value and headers unchanged — plus the `dlq-*` headers saying why. "
        "Replay with `vitrine dlq replay` once the cause is fixed."
    )
    original = _input_payload(origin, service, messages, doc)
    message["contentType"] = CONTENT_TYPE
    message["correlationId"] = dict(_CORRELATION_ID)
    message["summary"] = f"A record of {origin}, unchanged, that {service} dead-lettered."
    message["description"] = (
        "The value is the original record's bytes, unchanged: whatever was consumed. Most "
        f"often a CloudEvent of {origin} that failed one check (`dlq-reason` says which); it "
        "may also be no JSON at all (`not_json`), a JSON value that is no CloudEvent, or "
        "empty (`empty`). The original `content-type` header is kept as it was."
    )
    message["payload"] = {
        "title": f"{origin}.dlq:DeadLetter",
        "description": "The original value unchanged: an event of the origin topic, or any "
        "other bytes that failed before they could be one.",
        "anyOf": [
            original,
            {"description": "Anything else the producer wrote (not a valid event of the topic)."},
        ],
    }
    message["headers"] = _dead_letter_headers()
    message["bindings"] = {
        "kafka": {
            "key": {
                "type": "string",
                "description": "The original record's key, unchanged (absent if it had none).",
            },
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def _input_payload(origin: str, service: str, messages: Schema, doc: Schema) -> Schema:
    """The payload schema of the consumed topic ``origin``, as this document names it."""
    for channel in doc["channels"].values():
        if channel["address"] == origin and "SubscribeMessage" in channel["messages"]:
            ref = channel["messages"]["SubscribeMessage"]["$ref"].rsplit("/", 1)[1]
            payload: Schema = messages[ref]["payload"]
            return copy.deepcopy(payload)
    raise KeyError(f"{service} dead-letters {origin} but does not consume it")


_DLQ_HEADER_TEXT = {
    "dlq-reason": "Why, as a stable code.",
    "dlq-error": "The detail, for people (at most 2000 characters).",
    "dlq-service": "The service (consumer group) that dead-lettered it.",
    "dlq-topic": "The topic the record was consumed from.",
    "dlq-partition": "Its partition there (decimal).",
    "dlq-offset": "Its offset there (decimal).",
    "dlq-time": "When it was dead-lettered (RFC 3339, UTC).",
}


def _dead_letter_headers() -> Schema:
    """The ``dlq-*`` headers of ``vitrine.runtime.messaging.dlq``, after the original ones."""
    properties: Schema = {
        name: {"type": "string", "description": text} for name, text in _DLQ_HEADER_TEXT.items()
    }
    properties["dlq-reason"]["enum"] = [r.code for r in DEAD_LETTER_REASONS]
    properties["dlq-partition"]["pattern"] = "^[0-9]+$"
    properties["dlq-offset"]["pattern"] = "^[0-9]+$"
    return {
        "type": "object",
        "description": "The original record's headers (any earlier `dlq-*` ones dropped), "
        "then these.",
        "properties": properties,
        "required": list(_DLQ_HEADER_TEXT),
        "additionalProperties": True,
    }


def _enumerate_reason_codes(schemas: Schema) -> None:
    """Per event type, the codes its ``reasons[].code`` / ``reason`` can hold."""
    for schema in schemas.values():
        type_ = schema.get("properties", {}).get("type", {}).get("const")
        data_ref = schema.get("properties", {}).get("data", {}).get("$ref")
        if not isinstance(type_, str) or not isinstance(data_ref, str):
            continue
        data = schemas[data_ref.rsplit("/", 1)[1]]
        for code_set in code_sets_for(type_):
            field = data.get("properties", {}).get(code_set.field)
            if field is None:
                continue
            if code_set.field == "reasons":
                data["properties"]["reasons"] = {
                    **{k: v for k, v in field.items() if k != "items"},
                    "items": {
                        "allOf": [
                            field["items"],
                            {"properties": {"code": _code_schema(code_set)}},
                        ]
                    },
                }
            else:
                nullable = "anyOf" in field
                codes = _code_schema(code_set)
                data["properties"]["reason"] = (
                    {"anyOf": [codes, {"type": "null"}], "default": None} if nullable else codes
                )


def _code_schema(code_set: CodeSet) -> Schema:
    planned = [c.code for c in code_set.codes if c.planned]
    text = f"The {code_set.name} codes."
    if planned:
        text += f" Not emitted by this release yet (planned): {', '.join(planned)}."
    enum: Schema = {"type": "string", "enum": code_set.values}
    if code_set.open:
        return {
            "description": text + " Codes a reviewer gives in `review.manual_decided` are "
            "passed through unchanged, so other codes may appear.",
            "anyOf": [enum, {"type": "string", "minLength": 1, "maxLength": 64}],
        }
    return {**enum, "description": text}


class _Rendered:
    """A finished document where FastStream's page wants a specification (it reads only
    ``to_json()`` and ``title``)."""

    def __init__(self, document: Schema) -> None:
        self._document = document
        self.title = str(document["info"]["title"])

    def to_json(self) -> str:
        return json.dumps(self._document, ensure_ascii=False)


def page(document: Schema) -> str:
    """FastStream's AsyncAPI viewer page, showing ``document``."""
    from faststream.specification.asyncapi.site import get_asyncapi_html

    return get_asyncapi_html(cast(Any, _Rendered(document)))
