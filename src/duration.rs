//! The one duration syntax of flags and annotations: `500ms`, `30s`, `2m`, `1h`, combinations such as
//! `1m30s` (jiff's "friendly" format), or plain seconds (`45`).

use std::time::Duration;

/// Parses a non-negative duration, or says what was expected.
pub fn parse(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let expected = || format!("{raw:?} is not a duration like 500ms, 30s, 2m, 1h or 45 (seconds)");
    if raw.is_empty() {
        return Err(expected());
    }
    let signed = if raw.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = raw.parse().map_err(|_| expected())?;
        jiff::SignedDuration::from_secs(seconds)
    } else {
        raw.parse::<jiff::SignedDuration>()
            .map_err(|_| expected())?
    };
    Duration::try_from(signed).map_err(|_| format!("{raw:?} must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_combinations_and_plain_seconds_parse() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 45 "), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn garbage_and_negative_durations_are_rejected() {
        for bad in ["", "soon", "-1s", "1.5.2s", "99999999999999999999"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
