//! Parsing `--since` / `--until` values. Pure: "now" is an argument.

use chrono::{DateTime, NaiveDate, TimeZone};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a time: use RFC 3339 (2026-11-28T09:00:00Z), a date (2026-11-28 or 20261128), or a duration ago (90m, 24h, 7d)"
)]
pub struct WhenError(pub String);

/// Which end of a range a value bounds: a bare date as `until` includes the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Since,
    Until,
}

/// Epoch milliseconds for `text`.
///
/// # Errors
/// A value in none of the accepted forms, or a date that does not exist in `tz`.
pub fn parse_when(
    text: &str,
    now_ms: i64,
    tz: chrono_tz::Tz,
    bound: Bound,
) -> Result<i64, WhenError> {
    let err = || WhenError(text.to_owned());
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y%m%d"));
    if let Ok(date) = date {
        let day = match bound {
            Bound::Since => date,
            Bound::Until => date.succ_opt().ok_or_else(err)?,
        };
        let midnight = day.and_hms_opt(0, 0, 0).ok_or_else(err)?;
        // `earliest` resolves a DST gap or overlap at midnight.
        return tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(err);
    }
    let ago = humantime::parse_duration(text).map_err(|_| err())?;
    let ago_ms = i64::try_from(ago.as_millis()).map_err(|_| err())?;
    Ok(now_ms - ago_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_867_200_000; // 2026-11-28T12:00:00Z

    #[test]
    fn accepts_rfc3339_dates_and_durations() {
        let utc = chrono_tz::UTC;
        assert_eq!(
            parse_when("2026-11-28T12:00:00Z", NOW, utc, Bound::Since),
            Ok(NOW)
        );
        assert_eq!(
            parse_when("2026-11-28", NOW, utc, Bound::Since),
            Ok(NOW - 12 * 3_600_000)
        );
        assert_eq!(
            parse_when("20261128", NOW, utc, Bound::Since),
            Ok(NOW - 12 * 3_600_000)
        );
        assert_eq!(
            parse_when("2026-11-28", NOW, utc, Bound::Until),
            Ok(NOW + 12 * 3_600_000),
            "whole day"
        );
        assert_eq!(
            parse_when("2h", NOW, utc, Bound::Since),
            Ok(NOW - 7_200_000)
        );
        assert_eq!(
            parse_when("7d", NOW, utc, Bound::Since),
            Ok(NOW - 7 * 86_400_000)
        );
    }

    #[test]
    fn dates_are_midnight_in_the_given_zone() {
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(
            parse_when("2026-11-28", NOW, paris, Bound::Since),
            Ok(NOW - 13 * 3_600_000)
        );
    }

    #[test]
    fn rejects_garbage_with_the_accepted_forms() {
        let err = parse_when("last tuesday", NOW, chrono_tz::UTC, Bound::Since).unwrap_err();
        assert!(err.to_string().contains("'last tuesday'"));
        assert!(err.to_string().contains("RFC 3339"));
        assert!(parse_when("2026-13-01", NOW, chrono_tz::UTC, Bound::Since).is_err());
    }
}
