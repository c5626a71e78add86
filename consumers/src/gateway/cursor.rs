//! Where a feed stream is: for every partition of the feed, the offset of the next record to
//! send. Each SSE event's id is the whole cursor after that event, so a client that reconnects
//! with `Last-Event-ID` resumes every partition exactly where it stopped: nothing missed, nothing
//! repeated, whatever order the partitions interleaved in.

use std::{collections::BTreeMap, fmt};

/// `partition:next-offset` pairs, e.g. `0:17,1:4`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<i32, i64>);

impl Cursor {
    /// Parses an event id as [`Cursor`]'s `Display` writes it; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        if text.len() > 16 * 1024 {
            return Err("the event id is longer than any cursor".into());
        }
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = pair
                .split_once(':')
                .ok_or_else(|| format!("{pair:?} is not partition:offset"))?;
            let p: i32 = p
                .trim()
                .parse()
                .map_err(|_| format!("partition {p:?} is not a number"))?;
            let o: i64 = o
                .trim()
                .parse()
                .map_err(|_| format!("offset {o:?} is not a number"))?;
            if p < 0 || o < 0 {
                return Err(format!(
                    "{pair:?}: partitions and offsets are never negative"
                ));
            }
            if out.insert(p, o).is_some() {
                return Err(format!("partition {p} appears twice"));
            }
        }
        if out.is_empty() {
            return Err("the event id names no partition".into());
        }
        Ok(Cursor(out))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, o)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}:{o}")?;
        }
        Ok(())
    }
}

/// Where a new stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Only what arrives from now on (the default).
    Latest,
    /// Everything the feed still holds.
    Earliest,
    /// Records written at or after this time (milliseconds since the epoch).
    Time(i64),
    /// Exactly after the event whose id this is.
    Resume(Cursor),
}

impl Start {
    /// `latest`, `earliest`, an RFC 3339 time (`2026-12-01T09:00:00Z`) or milliseconds since the
    /// epoch.
    pub fn parse_from(text: &str) -> Result<Self, String> {
        match text {
            "" | "latest" => Ok(Start::Latest),
            "earliest" => Ok(Start::Earliest),
            t if t.bytes().all(|b| b.is_ascii_digit()) => t
                .parse()
                .map(Start::Time)
                .map_err(|_| format!("{t:?} is too large for milliseconds since the epoch")),
            t => t
                .parse::<jiff::Timestamp>()
                .map_err(|e| e.to_string())
                .and_then(|ts| match ts.as_millisecond() {
                    ms if ms >= 0 => Ok(Start::Time(ms)),
                    _ => Err("feeds hold nothing from before 1970".to_owned()),
                })
                .map_err(|e| {
                    format!(
                        "from={t:?} is not latest, earliest, an RFC 3339 time or epoch milliseconds: {e}"
                    )
                }),
        }
    }

    /// How the consultation record describes it.
    pub fn describe(&self) -> String {
        match self {
            Start::Latest => "latest".into(),
            Start::Earliest => "earliest".into(),
            Start::Time(ms) => jiff::Timestamp::from_millisecond(*ms)
                .map_or_else(|_| ms.to_string(), |t| t.to_string()),
            Start::Resume(c) => format!("resume {c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ids_say_why() {
        let c = Cursor::parse("0:17,1:4,5:0").expect("parses");
        assert_eq!(c.to_string(), "0:17,1:4,5:0");
        assert!(Cursor::parse("0:1,0:2").unwrap_err().contains("twice"));
        assert!(Cursor::parse("x:1").unwrap_err().contains("partition"));
        assert!(Cursor::parse("0:-1").unwrap_err().contains("negative"));
        assert!(Cursor::parse("").unwrap_err().contains("no partition"));
        assert!(Cursor::parse("7").unwrap_err().contains("partition:offset"));
    }

    #[test]
    fn starts_parse_from_words_times_and_millis() {
        assert_eq!(Start::parse_from("latest"), Ok(Start::Latest));
        assert_eq!(Start::parse_from("earliest"), Ok(Start::Earliest));
        assert_eq!(Start::parse_from("1000"), Ok(Start::Time(1000)));
        assert_eq!(
            Start::parse_from("1970-01-01T00:00:01Z"),
            Ok(Start::Time(1000))
        );
        assert!(
            Start::parse_from("yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            Start::parse_from("1969-12-31T23:59:59Z")
                .unwrap_err()
                .contains("before 1970")
        );
    }
}
