//! Field checks shared by the adapters. Each returns the normalised value or a problem text that
//! says what is wrong with the value and what a right one looks like.

use bluelight_avro::records::{Classification, Date, Timestamp};

/// A UK postcode, normalised to upper case with one space before the inward code ("BS1 6HG").
pub fn postcode(value: &str) -> Result<String, String> {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let bad = || format!("{value:?} is not a UK postcode (e.g. \"BS1 6HG\")");
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return Err(bad());
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = matches!(inward.as_bytes(), [d, a, b] if d.is_ascii_digit() && a.is_ascii_alphabetic() && b.is_ascii_alphabetic());
    let o = outward.as_bytes();
    let letters = o.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let outward_ok = (1..=2).contains(&letters)
        && o.get(letters).is_some_and(u8::is_ascii_digit)
        && o[letters + 1..].iter().all(u8::is_ascii_alphanumeric)
        && o.len() - letters <= 2;
    if inward_ok && outward_ok {
        Ok(format!("{outward} {inward}"))
    } else {
        Err(bad())
    }
}

/// A protective marking bluelight may carry: OFFICIAL or OFFICIAL-SENSITIVE.
pub fn classification(value: &str) -> Result<Classification, String> {
    Classification::from_marking(value).ok_or_else(|| {
        format!("{value:?} is not OFFICIAL or OFFICIAL-SENSITIVE; bluelight carries nothing higher")
    })
}

/// A Unique Property Reference Number: 1 to 12 digits, not zero.
pub fn uprn(value: &str) -> Result<String, String> {
    let v = value.trim().trim_start_matches('0');
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{value:?} is not a UPRN (1 to 12 digits, e.g. \"100120012345\")"
        ));
    }
    Ok(v.to_owned())
}

/// An instant with an explicit offset (RFC 3339 / ISO 8601), e.g. "2026-11-22T09:14:03Z" or
/// "2026-06-01T10:00:00+01:00". A local time without an offset is refused: around the clock
/// change it names two instants or none.
pub fn timestamp(value: &str) -> Result<Timestamp, String> {
    let v = value.trim();
    match v.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(Timestamp(t.as_millisecond())),
        Err(_) if v.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
            "{value:?} has no time zone offset; write \"{v}Z\" for UTC or add the offset, e.g. \"+01:00\""
        )),
        Err(_) => Err(format!(
            "{value:?} is not a timestamp with a zone (e.g. \"2026-11-22T09:14:03Z\")"
        )),
    }
}

/// A calendar date "YYYY-MM-DD", not in the future.
pub fn date(value: &str) -> Result<Date, String> {
    let d: jiff::civil::Date = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a date (YYYY-MM-DD, e.g. \"1984-03-07\")"))?;
    let days = (d - jiff::civil::date(1970, 1, 1)).get_days();
    let today = (jiff::Zoned::now().date() - jiff::civil::date(1970, 1, 1)).get_days();
    if days > today {
        return Err(format!("{value:?} is in the future"));
    }
    Ok(Date(days))
}

/// WGS84 latitude in degrees.
pub fn latitude(value: f64) -> Result<f64, String> {
    if value.is_finite() && (-90.0..=90.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is out of range for a latitude (-90 to 90)"
        ))
    }
}

/// WGS84 longitude in degrees.
pub fn longitude(value: f64) -> Result<f64, String> {
    if value.is_finite() && (-180.0..=180.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is out of range for a longitude (-180 to 180)"
        ))
    }
}

/// OSGB36 easting in metres (the national grid is 700 km wide).
pub fn easting(value: i64) -> Result<i32, String> {
    if (0..=700_000).contains(&value) {
        Ok(i32::try_from(value).unwrap_or_default())
    } else {
        Err(format!(
            "{value} is outside the national grid (easting 0 to 700000)"
        ))
    }
}

/// OSGB36 northing in metres (the national grid is 1300 km tall).
pub fn northing(value: i64) -> Result<i32, String> {
    if (0..=1_300_000).contains(&value) {
        Ok(i32::try_from(value).unwrap_or_default())
    } else {
        Err(format!(
            "{value} is outside the national grid (northing 0 to 1300000)"
        ))
    }
}

/// A Home Office offence code, "NNN/NN" (e.g. "008/01").
pub fn offence_code(value: &str) -> Result<String, String> {
    let v = value.trim();
    let ok = matches!(v.as_bytes(), [a, b, c, b'/', d, e] if [a, b, c, d, e].iter().all(|x| x.is_ascii_digit()));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a Home Office offence code (NNN/NN, e.g. \"008/01\")"
        ))
    }
}

/// A reference or id: 1 to 64 printable characters without spaces.
pub fn reference(value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("is empty".into());
    }
    if v.len() > 64 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{value:?} is not a reference (1 to 64 characters, no spaces)"
        ));
    }
    Ok(v.to_owned())
}

/// A count of people: zero or more, and plausible.
pub fn count(value: i64) -> Result<i32, String> {
    if (0..=100_000).contains(&value) {
        Ok(i32::try_from(value).unwrap_or_default())
    } else {
        Err(format!("{value} is not a count of people (0 to 100000)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_normalise_and_refuse_with_an_example() {
        for (input, want) in [
            ("bs16hg", "BS1 6HG"),
            ("SW1A 1AA", "SW1A 1AA"),
            (" m1 1ae ", "M1 1AE"),
            ("EC1A1BB", "EC1A 1BB"),
        ] {
            assert_eq!(postcode(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "", "BS1", "12345", "BS1 6H", "B$1 6HG", "BS1 66G", "ABC1 2DE",
        ] {
            assert_eq!(
                postcode(bad),
                Err(format!("{bad:?} is not a UK postcode (e.g. \"BS1 6HG\")"))
            );
        }
    }

    #[test]
    fn timestamps_need_a_zone() {
        assert_eq!(timestamp("1970-01-01T00:00:01Z"), Ok(Timestamp(1000)));
        assert_eq!(
            timestamp("2026-06-01T10:00:00+01:00"),
            timestamp("2026-06-01T09:00:00Z")
        );
        assert_eq!(
            timestamp("2026-11-22T09:14:03"),
            Err("\"2026-11-22T09:14:03\" has no time zone offset; write \"2026-11-22T09:14:03Z\" for UTC or add the offset, e.g. \"+01:00\"".into())
        );
        assert!(
            timestamp("yesterday")
                .unwrap_err()
                .contains("is not a timestamp with a zone")
        );
    }

    #[test]
    fn other_fields() {
        assert_eq!(uprn("0100120012345").as_deref(), Ok("100120012345"));
        assert!(uprn("12345678901234").is_err() && uprn("12A").is_err() && uprn("000").is_err());
        assert_eq!(date("1970-01-11"), Ok(Date(10)));
        assert!(date("2999-01-01").unwrap_err().contains("in the future"));
        assert!(date("11/01/1970").is_err());
        assert!(
            latitude(91.0).is_err() && longitude(-181.0).is_err() && latitude(f64::NAN).is_err()
        );
        assert!(easting(-1).is_err() && northing(1_300_001).is_err() && easting(359_870).is_ok());
        assert!(offence_code("008/01").is_ok() && offence_code("8/1").is_err());
        assert!(
            reference("INC 1").is_err() && reference("").is_err() && reference("INC-1").is_ok()
        );
        assert!(count(-1).is_err());
    }
}
