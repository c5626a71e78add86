//! Working days: weekends and bank holidays excluded, in the calendar's time zone.
//!
//! A deadline of N working days from a trigger ends at the last instant of the Nth working day
//! after the local date of the trigger: an arrest at 22:30 on a Friday with one working day to tell
//! the victim is due by the end of Monday (Tuesday if Monday is a bank holiday). The trigger's
//! own day never counts, whatever the hour, so a trigger at 00:05 and one at 23:55 on the same
//! day share a deadline.

use std::{collections::BTreeMap, path::Path};

use bluelight_avro::records::Timestamp;
use jiff::{
    civil::{Date, Weekday},
    tz::TimeZone,
};
use serde::Deserialize;

use crate::{Error, Problem, Result};

/// A working-day calendar: its holidays, the years they are known for, and its time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub name: String,
    tz: TimeZone,
    holidays: BTreeMap<Date, String>,
    first_year: i16,
    last_year: i16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    time_zone: String,
    covers: [i16; 2],
    holidays: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    date: toml::value::Datetime,
    name: String,
}

impl Calendar {
    /// The England and Wales calendar shipped with bluelight.
    pub fn england_and_wales() -> Result<Self> {
        Self::parse(
            include_str!("../../calendars/england-and-wales.toml"),
            "consumers/calendars/england-and-wales.toml",
        )
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let problem = |line: usize, reason: String| Error::Invalid {
            what: "the working-day calendar",
            problems: vec![Problem {
                file: file.to_owned(),
                line,
                reason,
            }],
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            problem(line, e.message().trim().to_owned())
        })?;
        let tz = TimeZone::get(&raw.time_zone)
            .map_err(|e| problem(0, format!("time_zone {:?}: {e}", raw.time_zone)))?;
        let [first_year, last_year] = raw.covers;
        if first_year > last_year {
            return Err(problem(
                0,
                format!("covers {first_year} to {last_year}: backwards"),
            ));
        }
        let mut holidays = BTreeMap::new();
        for h in raw.holidays {
            let d = h
                .date
                .date
                .ok_or_else(|| problem(0, format!("holiday {:?} has no date", h.name)))?;
            let date = jiff::civil::Date::new(
                i16::try_from(d.year).unwrap_or(i16::MAX),
                i8::try_from(d.month).unwrap_or(0),
                i8::try_from(d.day).unwrap_or(0),
            )
            .map_err(|e| problem(0, format!("holiday {:?}: {e}", h.name)))?;
            if date.year() < first_year || date.year() > last_year {
                return Err(problem(
                    0,
                    format!(
                        "holiday {date} ({}) is outside covers {first_year} to {last_year}",
                        h.name
                    ),
                ));
            }
            holidays.insert(date, h.name);
        }
        Ok(Calendar {
            name: raw.name,
            tz,
            holidays,
            first_year,
            last_year,
        })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether `day` is a working day; an error past the years the calendar knows.
    pub fn is_working_day(&self, day: Date) -> Result<bool> {
        if day.year() < self.first_year || day.year() > self.last_year {
            return Err(Error::Config(format!(
                "the {} calendar covers {} to {}; {day} is outside it: add that year's bank holidays",
                self.name, self.first_year, self.last_year
            )));
        }
        Ok(
            !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
                && !self.holidays.contains_key(&day),
        )
    }

    /// The Nth working day after the local date of `at`.
    pub fn add_working_days(&self, at: Timestamp, n: u32) -> Result<Date> {
        let mut day = self.local_date(at)?;
        let mut left = n;
        while left > 0 {
            day = day
                .tomorrow()
                .map_err(|e| Error::Config(format!("working days from {day}: {e}")))?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// The last millisecond of the Nth working day after `at`, local time, as a timestamp.
    pub fn due_by(&self, at: Timestamp, n: u32) -> Result<Timestamp> {
        let day = self.add_working_days(at, n)?;
        let end = day
            .at(23, 59, 59, 999_000_000)
            .to_zoned(self.tz.clone())
            .map_err(|e| Error::Config(format!("end of {day}: {e}")))?;
        Ok(Timestamp(end.timestamp().as_millisecond()))
    }

    fn local_date(&self, at: Timestamp) -> Result<Date> {
        let ts = jiff::Timestamp::from_millisecond(at.0)
            .map_err(|e| Error::Config(format!("time {}: {e}", at.0)))?;
        Ok(ts.to_zoned(self.tz.clone()).date())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london(s: &str) -> Timestamp {
        let z: jiff::Zoned = format!("{s}[Europe/London]").parse().expect("time");
        Timestamp(z.timestamp().as_millisecond())
    }

    fn utc(s: &str) -> Timestamp {
        let t: jiff::Timestamp = s.parse().expect("utc");
        Timestamp(t.as_millisecond())
    }

    #[test]
    fn working_day_deadlines() {
        let cal = Calendar::england_and_wales().expect("calendar");
        // (trigger, local time in London; working days; due by, UTC)
        let table = [
            // An ordinary Tuesday: 1 day is Wednesday, 5 days is the next Tuesday.
            ("2026-11-17T10:00", 1, "2026-11-18T23:59:59.999Z"),
            ("2026-11-17T10:00", 5, "2026-11-24T23:59:59.999Z"),
            // Late on a Friday evening: the weekend does not count.
            ("2026-11-20T22:45", 1, "2026-11-23T23:59:59.999Z"),
            ("2026-11-20T23:59", 5, "2026-11-27T23:59:59.999Z"),
            // A Saturday trigger: Monday is the first working day after it.
            ("2026-11-21T09:00", 1, "2026-11-23T23:59:59.999Z"),
            // Christmas 2026: Friday 25th, substitute Boxing Day Monday 28th, New Year Friday 1st.
            ("2026-12-24T16:00", 1, "2026-12-29T23:59:59.999Z"),
            ("2026-12-24T16:00", 5, "2027-01-05T23:59:59.999Z"),
            // Christmas 2027 falls at a weekend: both substitute days, Monday and Tuesday.
            ("2027-12-24T12:00", 1, "2027-12-29T23:59:59.999Z"),
            // Easter 2027: Good Friday 26 March and Easter Monday 29 March, the clocks going
            // forward on Sunday 28th: due by the end of Tuesday, British Summer Time.
            ("2027-03-25T18:00", 1, "2027-03-30T22:59:59.999Z"),
            // The early May and summer bank holidays.
            ("2026-05-01T12:00", 1, "2026-05-05T22:59:59.999Z"),
            ("2026-08-28T17:30", 1, "2026-09-01T22:59:59.999Z"),
            // Clocks go back on Sunday 25 October 2026: the trigger in BST, the deadline in GMT.
            ("2026-10-23T23:30", 1, "2026-10-26T23:59:59.999Z"),
            // Clocks go forward on Sunday 29 March 2026: the trigger in GMT, the deadline in BST.
            ("2026-03-27T20:00", 1, "2026-03-30T22:59:59.999Z"),
        ];
        for (trigger, days, want) in table {
            let got = cal.due_by(london(trigger), days).expect("due");
            assert_eq!(got, utc(want), "{trigger} + {days} working days");
        }
    }

    #[test]
    fn a_trigger_just_after_midnight_utc_in_summer_is_the_local_day() {
        let cal = Calendar::england_and_wales().expect("calendar");
        // 23:30 UTC on Friday 23 October 2026 is 00:30 on Saturday in London: Monday is day one.
        let due = cal.due_by(utc("2026-10-23T23:30:00Z"), 1).expect("due");
        assert_eq!(due, utc("2026-10-26T23:59:59.999Z"));
    }

    #[test]
    fn a_date_past_the_calendar_is_an_error_not_a_guess() {
        let cal = Calendar::england_and_wales().expect("calendar");
        let err = cal
            .due_by(london("2028-12-29T12:00"), 5)
            .expect_err("2029 unknown");
        assert!(err.to_string().contains("covers 2025 to 2028"), "{err}");
    }

    #[test]
    fn a_bad_calendar_is_refused_with_its_line() {
        let err = Calendar::parse(
            "name = \"x\"\ntime_zone = \"Europe/London\"\ncovers = [2025, 2025]\nholidays = [\n { date = 2026-01-01, name = \"y\" },\n]\n",
            "x.toml",
        )
        .expect_err("outside covers");
        assert!(err.to_string().contains("outside covers"), "{err}");
        let err = Calendar::parse("name = 1", "x.toml").expect_err("bad");
        assert!(err.to_string().contains("x.toml:1"), "{err}");
    }
}
