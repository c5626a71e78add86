"""Interop check with an independent Confluent client (confluent-kafka's SchemaRegistryClient,
AvroSerializer and AvroDeserializer, backed by fastavro) against bluelight's registry and codec.

Run by tests/python_interop.rs, which starts `bluelight registry`, produces records with the Rust
codec, runs this script, and then decodes what this script produced. Steps here:

1. decode every record the Rust side produced on --rust-topic with AvroDeserializer (writer schema
   fetched from the registry by id) and compare it, field by field, with --expect;
2. register --schema under --subject with SchemaRegistryClient, fetch it back by id and look it up;
3. produce each record of --expect, with a new id, to --python-topic with AvroSerializer, and write
   what it produced to --produced for the Rust side to compare.

Prints one line per step and exits non-zero on the first difference.
"""

import argparse
import datetime
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    """fastavro's logical types back to the JSON the Rust side writes (millis, day numbers, strings)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        return round((value - EPOCH).total_seconds() * 1000)
    if isinstance(value, datetime.date):
        return (value - EPOCH.date()).days
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--rust-topic", required=True)
    ap.add_argument("--python-topic", required=True)
    ap.add_argument("--subject", required=True)
    ap.add_argument("--schema", required=True, help=".avsc file")
    ap.add_argument("--expect", required=True, help="JSON list the Rust side produced")
    ap.add_argument("--produced", required=True, help="where to write what this script produced")
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    expected = json.load(open(args.expect))

    # 1. Decode what Rust produced.
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": f"py-interop-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.rust_topic])
    decoded = []
    deadline = time.time() + 60
    while len(decoded) < len(expected) and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume: {msg.error()}")
        value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        decoded.append(plain(value))
    consumer.close()
    if len(decoded) != len(expected):
        fail(f"decoded {len(decoded)} of {len(expected)} Rust records within 60 s")
    by_id = {r["envelope"]["event_id"]: r for r in decoded}
    for want in expected:
        got = by_id.get(want["envelope"]["event_id"])
        if got != want:
            fail(f"record {want['envelope']['event_id']} differs:\n  rust:   {json.dumps(want, sort_keys=True)}\n  python: {json.dumps(got, sort_keys=True)}")
    print(f"decoded {len(decoded)} Rust records with AvroDeserializer: identical", flush=True)

    # 2. Register, fetch and look up through SchemaRegistryClient.
    schema_str = open(args.schema).read()
    schema_id = registry.register_schema(args.subject, Schema(schema_str, "AVRO"))
    again = registry.register_schema(args.subject, Schema(schema_str, "AVRO"))
    if again != schema_id:
        fail(f"registering the same schema twice gave ids {schema_id} and {again}")
    fetched = registry.get_schema(schema_id)
    if json.loads(fetched.schema_str) != json.loads(schema_str):
        fail("the schema fetched by id differs from the one registered")
    found = registry.lookup_schema(args.subject, Schema(schema_str, "AVRO"))
    if found.schema_id != schema_id or found.version < 1:
        fail(f"lookup gave id {found.schema_id} version {found.version}, expected id {schema_id}")
    latest = registry.get_latest_version(args.subject)
    if latest.schema_id != schema_id:
        fail(f"latest version of {args.subject} has id {latest.schema_id}, expected {schema_id}")
    print(f"registered {args.subject} as id {schema_id}; fetch by id, lookup and latest agree", flush=True)

    # 2b. The registry's refusals, as the Confluent client sees them.
    incompatible = json.loads(schema_str)
    incompatible["fields"].append({"name": "added_without_default", "type": "string"})
    refusals = [
        ("incompatible", lambda: registry.register_schema(args.subject, Schema(json.dumps(incompatible), "AVRO")), 409, 409),
        ("unparsable", lambda: registry.register_schema(args.subject, Schema('{"type": "record"}', "AVRO")), 422, 42201),
        ("unknown subject", lambda: registry.get_latest_version(f"{args.subject}-nobody"), 404, 40401),
    ]
    for what, call, status, code in refusals:
        try:
            call()
            fail(f"{what}: the registry accepted it")
        except SchemaRegistryError as e:
            if (e.http_status_code, e.error_code) != (status, code):
                fail(f"{what}: got HTTP {e.http_status_code} / {e.error_code} ({e.error_message}), expected {status} / {code}")
    print("refusals: incompatible 409/409, unparsable 422/42201, unknown subject 404/40401", flush=True)

    # 3. Produce records for the Rust side to decode.
    serializer = AvroSerializer(registry, schema_str)
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    produced = []
    for record in expected:
        record = json.loads(json.dumps(record))
        record["envelope"]["event_id"] = str(uuid.uuid4())
        record["envelope"]["source_system"] = "python-interop"
        value = serializer(record, SerializationContext(args.python_topic, MessageField.VALUE))
        producer.produce(args.python_topic, value=value)
        produced.append(record)
    if producer.flush(30) != 0:
        fail("the producer did not deliver every record within 30 s")
    json.dump(produced, open(args.produced, "w"))
    print(f"produced {len(produced)} records with AvroSerializer to {args.python_topic}", flush=True)


if __name__ == "__main__":
    main()
