//! Dead-letter records: the source's original bytes, with headers saying who sent them, which
//! record it was, what was wrong and when.

use rdkafka::message::{Header, OwnedHeaders};

use super::Submission;

const DEAD_LETTER_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x1b7e_3f0a_52c4_4d8e_9a61_0c2f_7d3b_8e95);

pub(super) struct DeadLetter<'a> {
    pub topic: String,
    pub value: &'a [u8],
    pub headers: OwnedHeaders,
}

/// One dead-letter record per rejected source record.
pub(super) fn records<'a>(
    s: &Submission<'a>,
    topic: &str,
    traceparent: &str,
) -> Vec<DeadLetter<'a>> {
    s.translation
        .rejected
        .iter()
        .map(|r| {
            let value = s.input.get(r.span.clone()).unwrap_or(s.input);
            let error = r.to_string();
            let locator = r.locator.to_string();
            let received = s.source.received_at.0.to_string();
            // Stable per source and bytes, so a resent submission's dead letters can be de-duplicated.
            let name = [
                s.source.org.as_bytes(),
                b"\0",
                s.source.system.as_bytes(),
                b"\0",
                value,
            ]
            .concat();
            let id = uuid::Uuid::new_v5(&DEAD_LETTER_NAMESPACE, &name).to_string();
            let headers = [
                ("bl-dead-letter-id", id.as_str()),
                ("bl-source", s.source.org.as_str()),
                ("bl-source-system", s.source.system.as_str()),
                ("bl-adapter", r.adapter),
                ("bl-record", locator.as_str()),
                ("bl-error", error.as_str()),
                ("bl-received-at", received.as_str()),
                ("traceparent", traceparent),
            ]
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            });
            // The CSV header line or MAIT message header the record needs to be read again.
            let headers = match &r.context {
                Some(context) => headers.insert(Header {
                    key: "bl-record-context",
                    value: Some(context.as_str()),
                }),
                None => headers,
            };
            DeadLetter {
                topic: topic.to_owned(),
                value,
                headers,
            }
        })
        .collect()
}
