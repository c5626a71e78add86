//! The field transforms an agreement may ask for, applied to one JSON value of the canonical record.
//!
//! Each takes the value as the source sent it and gives what the recipient gets. Nulls stay null:
//! a transform never invents a value.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::policy::Generalisation;

type HmacSha256 = Hmac<Sha256>;

/// Keyed pseudonyms for one agreement: the same input gives the same pseudonym within the
/// agreement (so a recipient can link records about one person), different agreements give
/// unrelated pseudonyms, and without the secret nobody can go back or test a guess.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: HmacSha256,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

impl Pseudonymiser {
    /// Derives the agreement's key from the deployment's secret, so rotating the secret rotates
    /// every agreement's pseudonyms, and one agreement's key reveals nothing of another's.
    pub fn new(secret: &[u8], agreement_id: &str) -> Self {
        let mut derive = new_mac(secret);
        derive.update(b"bluelight pseudonym key v1\0");
        derive.update(agreement_id.as_bytes());
        let key = derive.finalize().into_bytes();
        Pseudonymiser { mac: new_mac(&key) }
    }

    /// `psn-` and 96 bits of the HMAC in hex: short enough to read, far too wide to collide.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(4 + 24);
        out.push_str("psn-");
        for b in &digest[..12] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the error arm cannot happen, but a panic is never the answer.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| {
        <HmacSha256 as hmac::digest::KeyInit>::new(&hmac::digest::Key::<HmacSha256>::default())
    })
}

/// What a redacted text reads: the recipient learns there is a value, not what it is.
pub const REDACTED: &str = "[redacted]";

pub fn redact(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        _ => Value::String(REDACTED.into()),
    }
}

pub fn pseudonymise(p: &Pseudonymiser, v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(p.pseudonym(s)),
        _ => Value::Null,
    }
}

/// Applies a generalisation that keeps the field's type. (Age bands change the field: see
/// [`age_band`].)
pub fn generalise(g: Generalisation, field: &str, v: &Value) -> Value {
    match (g, v) {
        (Generalisation::PostcodeSector, Value::String(s)) => postcode_sector(s).into(),
        (Generalisation::Grid1Km, Value::Number(n)) => match field {
            "easting" | "northing" => n.as_i64().map_or(Value::Null, |m| {
                Value::from(m.div_euclid(1000) * 1000 + 500)
            }),
            _ => n
                .as_f64()
                .map_or(Value::Null, |x| Value::from(grid_degrees(field, x))),
        },
        (Generalisation::Hour, Value::Number(n)) => n.as_i64().map_or(Value::Null, |ms| {
            Value::from(ms.div_euclid(HOUR_MS) * HOUR_MS)
        }),
        _ => Value::Null,
    }
}

pub(super) const HOUR_MS: i64 = 3_600_000;

/// "BS1 6HG" → "BS1 6": the outward code and the first character of the inward code. A value
/// that is only an outward code (or unreadable) gives the outward code or nothing, never more.
pub fn postcode_sector(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let outward_ok = |o: &str| {
        (2..=4).contains(&o.len())
            && o.starts_with(|c: char| c.is_ascii_uppercase())
            && o.chars().all(|c| c.is_ascii_alphanumeric())
    };
    if compact.len() <= 4 {
        return outward_ok(&compact).then_some(compact);
    }
    let (outward, inward) = compact.split_at(compact.len().checked_sub(3)?);
    let b = inward.as_bytes();
    let inward_ok = b.len() == 3
        && b[0].is_ascii_digit()
        && b[1].is_ascii_uppercase()
        && b[2].is_ascii_uppercase();
    (outward_ok(outward) && inward_ok).then(|| format!("{outward} {}", &inward[..1]))
}

/// The centre of the 1 km cell a coordinate falls in: 1 km is 1/111.32 of a degree of latitude,
/// and of longitude at 51.5° N (the south west of England) about 1/69.3.
pub(super) fn grid_degrees(field: &str, x: f64) -> f64 {
    let cell = if field == "longitude" {
        1.0 / 69.3
    } else {
        1.0 / 111.32
    };
    let centre = ((x / cell).floor() + 0.5) * cell;
    (centre * 10_000.0).round() / 10_000.0
}

/// The age band of a date of birth (days since 1970-01-01) on the day of `at_ms`: the bands
/// follow the legal lines that matter to responders (child, young adult) and then decades.
pub fn age_band(dob_days: i64, at_ms: i64) -> Option<String> {
    let epoch = jiff::civil::date(1970, 1, 1);
    let dob = epoch
        .checked_add(jiff::Span::new().try_days(dob_days).ok()?)
        .ok()?;
    let at = jiff::Timestamp::from_millisecond(at_ms)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut age = i32::from(at.year()) - i32::from(dob.year());
    if (at.month(), at.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    Some(
        match age {
            i32::MIN..=-1 => return None,
            0..=9 => "0-9",
            10..=17 => "10-17",
            18..=24 => "18-24",
            25..=34 => "25-34",
            35..=44 => "35-44",
            45..=54 => "45-54",
            55..=64 => "55-64",
            65..=74 => "65-74",
            _ => "75+",
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_link_within_an_agreement_only() {
        let a = Pseudonymiser::new(b"secret", "isa-a");
        let b = Pseudonymiser::new(b"secret", "isa-b");
        let rotated = Pseudonymiser::new(b"other secret", "isa-a");
        let p = a.pseudonym("PER-1");
        assert_eq!(p, a.pseudonym("PER-1"));
        assert_eq!(p.len(), 28);
        assert!(p.starts_with("psn-"));
        assert_ne!(p, a.pseudonym("PER-2"));
        assert_ne!(p, b.pseudonym("PER-1"));
        assert_ne!(p, rotated.pseudonym("PER-1"));
        assert!(!p.contains("PER"));
    }

    #[test]
    fn postcodes_generalise_to_their_sector() {
        for (given, want) in [
            ("BS1 6HG", Some("BS1 6")),
            ("bs16hg", Some("BS1 6")),
            ("SW1A 1AA", Some("SW1A 1")),
            ("BS1", Some("BS1")),
            ("B", None),
            ("12 HIGH STREET BS1", None),
            ("not a postcode", None),
        ] {
            assert_eq!(postcode_sector(given).as_deref(), want, "{given}");
        }
    }

    #[test]
    fn grid_cells_are_about_a_kilometre_and_hide_the_point() {
        let a = grid_degrees("latitude", 51.454_51);
        let b = grid_degrees("latitude", 51.452_0);
        assert_eq!(a, b, "two points 280 m apart in one cell share it");
        assert!((a - 51.454_51).abs() < 0.009);
        assert_eq!(
            generalise(Generalisation::Grid1Km, "easting", &Value::from(358_712)),
            Value::from(358_500)
        );
        assert_eq!(
            generalise(
                Generalisation::Hour,
                "occurred_at",
                &Value::from(1_700_000_123_456_i64)
            ),
            Value::from(1_699_999_200_000_i64)
        );
    }

    #[test]
    fn ages_band_on_the_day_of_the_event() {
        // Born 2000-06-15 (11_123 days after the epoch).
        let dob = 11_123;
        let day = |y, m, d| {
            jiff::civil::date(y, m, d)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_millisecond())
                .expect("date")
        };
        assert_eq!(age_band(dob, day(2018, 6, 14)).as_deref(), Some("10-17"));
        assert_eq!(age_band(dob, day(2018, 6, 15)).as_deref(), Some("18-24"));
        assert_eq!(age_band(dob, day(2090, 1, 1)).as_deref(), Some("75+"));
        assert_eq!(age_band(dob, day(1999, 1, 1)), None, "born after the event");
        assert_eq!(
            age_band(10_000_000, day(2026, 1, 1)),
            None,
            "out of range, not a panic"
        );
        assert_eq!(age_band(i64::from(i32::MIN), day(2026, 1, 1)), None);
    }
}
