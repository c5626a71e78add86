//! Reading JSON source records field by field, collecting every problem with its field path,
//! and finding each record's bytes in the input.

use std::ops::Range;

use serde_json::{Map, Value, value::RawValue};

use super::{Canonical, Locator, Problem, Rejected, Translated, Translation};

/// One JSON object of a source record, with the dotted path of where it sits inside the record.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a str,
}

/// The problems found in one record so far.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(Problem::new(field, problem));
    }

    /// Records `Err` as a problem of `field`; passes `Ok` through.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str, p: &mut Problems) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.as_str()),
            other => {
                p.add(
                    self.field(key),
                    format!("must be a string, not {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn req_str(&self, key: &str, p: &mut Problems) -> Option<&'a str> {
        let present = self.get(key).is_some();
        let value = self.opt_str(key, p);
        if value.is_none() && !p.0.iter().any(|x| x.field == self.field(key)) {
            p.add(
                self.field(key),
                if present { "is empty" } else { "is required" },
            );
        }
        value
    }

    pub fn opt_i64(&self, key: &str, p: &mut Problems) -> Option<i64> {
        match self.get(key)? {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            other => {
                p.add(
                    self.field(key),
                    format!("must be a whole number, not {}", show(other)),
                );
                None
            }
        }
    }

    pub fn opt_f64(&self, key: &str, p: &mut Problems) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            other => {
                p.add(
                    self.field(key),
                    format!("must be a number, not {}", show(other)),
                );
                None
            }
        }
    }

    pub fn opt_bool(&self, key: &str, p: &mut Problems) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                p.add(
                    self.field(key),
                    format!("must be true or false, not {}", show(other)),
                );
                None
            }
        }
    }

    /// A nested object; `path` must outlive the returned view, so callers pass a `String` they keep.
    pub fn opt_obj(&self, key: &str, path: &'a str, p: &mut Problems) -> Option<Obj<'a>> {
        match self.get(key)? {
            Value::Object(map) => Some(Obj { map, path }),
            other => {
                p.add(
                    self.field(key),
                    format!("must be an object, not {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn list(&self, key: &str, p: &mut Problems) -> &'a [Value] {
        match self.get(key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                p.add(
                    self.field(key),
                    format!("must be a list, not {}", kind(other)),
                );
                &[]
            }
        }
    }

    /// A list of strings (codes).
    pub fn str_list(&self, key: &str, p: &mut Problems) -> Vec<&'a str> {
        let mut out = Vec::new();
        for (i, v) in self.list(key, p).iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.as_str()),
                other => p.add(
                    format!("{}[{i}]", self.field(key)),
                    format!("must be a string, not {}", kind(other)),
                ),
            }
        }
        out
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        other => kind(other).to_owned(),
    }
}

/// One record of a JSON input: where it is and its bytes.
pub(crate) struct RawRecord<'a> {
    pub locator: Locator,
    pub span: Range<usize>,
    pub raw: &'a RawValue,
}

/// Splits a JSON input into records. Accepts `{"<list_key>": [..]}`, a bare list, or one record
/// object. An input that is not JSON is a single problem about the document.
pub(crate) fn split<'a>(input: &'a [u8], list_key: &str) -> Result<Vec<RawRecord<'a>>, Problem> {
    let text = std::str::from_utf8(input)
        .map_err(|e| Problem::new("(document)", format!("is not UTF-8: {e}")))?;
    let invalid =
        |e: serde_json::Error| Problem::new("(document)", format!("is not valid JSON: {e}"));
    let first = text.trim_start().chars().next();
    let (records, prefix): (Vec<&'a RawValue>, String) = match first {
        Some('[') => (serde_json::from_str(text).map_err(invalid)?, String::new()),
        Some('{') => {
            let map: std::collections::BTreeMap<&'a str, &'a RawValue> =
                serde_json::from_str(text).map_err(invalid)?;
            match map.get(list_key) {
                Some(list) => (
                    serde_json::from_str(list.get()).map_err(|_| {
                        Problem::new(list_key, "must be a list of records".to_owned())
                    })?,
                    format!("/{list_key}"),
                ),
                None => {
                    let whole: &'a RawValue = serde_json::from_str(text).map_err(invalid)?;
                    return Ok(vec![RawRecord {
                        locator: Locator::JsonPointer(String::new()),
                        span: span_of(text, whole),
                        raw: whole,
                    }]);
                }
            }
        }
        _ => {
            return Err(Problem::new(
                "(document)",
                format!("must be a JSON object or list, e.g. {{\"{list_key}\": [...]}}"),
            ));
        }
    };
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| RawRecord {
            locator: Locator::JsonPointer(format!("{prefix}/{i}")),
            span: span_of(text, raw),
            raw,
        })
        .collect())
}

/// Where a borrowed slice of `text` sits in it.
fn span_of(text: &str, raw: &RawValue) -> Range<usize> {
    let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    start..start + raw.get().len()
}

/// Translates every record of a JSON input with `record`, which reads one record object (and its
/// raw text, for the event id) and returns the canonical record or leaves its problems in `p`.
pub(crate) fn translate(
    adapter: &'static str,
    input: &[u8],
    list_key: &str,
    mut record: impl FnMut(Obj<'_>, &str, &mut Problems) -> Option<Canonical>,
) -> Translation {
    let mut out = Translation::default();
    let records = match split(input, list_key) {
        Ok(records) => records,
        Err(problem) => {
            out.rejected.push(Rejected {
                adapter,
                locator: Locator::Document,
                problems: vec![problem],
                span: 0..input.len(),
                context: None,
            });
            return out;
        }
    };
    for raw in records {
        let mut p = Problems::default();
        let value: Value = serde_json::from_str(raw.raw.get()).unwrap_or(Value::Null);
        let translated = match &value {
            Value::Object(map) => record(Obj { map, path: "" }, raw.raw.get(), &mut p),
            _ => {
                p.add("(record)", "must be a JSON object");
                None
            }
        };
        match translated {
            Some(r) if p.0.is_empty() => out.accepted.push(Translated {
                record: r,
                locator: raw.locator,
                span: raw.span,
            }),
            _ => out.rejected.push(Rejected {
                adapter,
                locator: raw.locator,
                problems: p.0,
                span: raw.span,
                context: None,
            }),
        }
    }
    out
}
