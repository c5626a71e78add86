"""Reads a bluelight feed with an independent client: confluent-kafka's Consumer (read_committed)
and AvroDeserializer, the writer schema fetched from the registry by the id in each record.

Run by tests/projector.rs. Prints one JSON object per record: its key and the decoded value's
incident id, event type and disclosure reference. Exits non-zero if fewer than --count records
arrive within --timeout seconds.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": a.registry}))
    consumer = Consumer({
        "bootstrap.servers": a.brokers,
        "group.id": f"read-feed-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    consumer.subscribe([a.topic])
    got = 0
    deadline = time.time() + a.timeout
    while got < a.count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        value = deserialize(m.value(), SerializationContext(a.topic, MessageField.VALUE))
        env = value["envelope"]
        print(json.dumps({
            "key": m.key().decode(),
            "incident_id": value["incident_id"],
            "event_type": env["event_type"],
            "agreement_id": env["disclosure"]["agreement_id"],
            "people": len(value["people"]),
            "summary": value["summary"],
        }), flush=True)
        got += 1
    consumer.close()
    if got < a.count:
        print(f"FAIL: {got} of {a.count} records within {a.timeout} s", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
