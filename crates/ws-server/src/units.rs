//! Parsers for the durations and sizes the command line takes.
//!
//! A hand-written parser rather than the `humantime` crate: the accepted
//! forms are few (`500ms`, `10s`, `2m`, `1h`, plain seconds; bytes with
//! `KiB`/`MiB`/`GiB`), and a dozen lines keep the dependency tree smaller
//! and the error messages ours.

use std::time::Duration;

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`, or a
/// plain number of seconds (`10`). Fractions are accepted (`1.5s`, `0.25`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h (e.g. 500ms, 10s, 2m)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 10s, 2m)"))?;
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .ok()
        .filter(|duration| *duration <= MAX_DURATION)
        .ok_or_else(|| format!("{text:?} is out of range (at most 1 year)"))
}

/// Longer timeouts mean nothing in practice, and the cap keeps deadline
/// arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Like [`parse_duration`], but zero is refused: a zero timeout would end
/// every connection at once.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// Parses an optional timeout: `off` (or `0`) disables it.
pub fn parse_optional_duration(text: &str) -> Result<OptionalDuration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OptionalDuration(None));
    }
    let duration = parse_duration(text)?;
    Ok(OptionalDuration((!duration.is_zero()).then_some(duration)))
}

/// A timeout that may be turned off (clap needs a named type to tell an
/// optional value from an optional argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalDuration(pub Option<Duration>);

/// Parses a size in bytes: a whole number, optionally followed by `B`,
/// `KiB`/`K`, `MiB`/`M` or `GiB`/`G` (powers of 1024, case-insensitive).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use bytes, KiB, MiB or GiB (e.g. 16MiB)"
            ));
        }
    };
    let value: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 65536, 64KiB, 16MiB)"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats a byte count the way [`parse_size`] reads it, in the largest unit
/// that divides it exactly.
pub fn format_size(bytes: usize) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10MS"), Ok(Duration::from_millis(10)));
    }

    #[test]
    fn durations_reject_garbage_with_a_hint() {
        for bad in [
            "",
            "s",
            "ten seconds",
            "10 parsecs",
            "-1s",
            "1e400",
            "1..2s",
            "9000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse_duration("5d")
                .unwrap_err()
                .contains("use ms, s, m or h")
        );
    }

    #[test]
    fn positive_duration_refuses_zero() {
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn optional_duration_is_off_for_off_and_zero() {
        assert_eq!(parse_optional_duration("off"), Ok(OptionalDuration(None)));
        assert_eq!(parse_optional_duration("OFF"), Ok(OptionalDuration(None)));
        assert_eq!(parse_optional_duration("0"), Ok(OptionalDuration(None)));
        assert_eq!(
            parse_optional_duration("30s"),
            Ok(OptionalDuration(Some(Duration::from_secs(30))))
        );
        assert!(parse_optional_duration("never").is_err());
    }

    #[test]
    fn sizes_accept_bytes_and_binary_suffixes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16mib"), Ok(16 << 20));
        assert_eq!(parse_size("2 M"), Ok(2 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    }

    #[test]
    fn sizes_reject_garbage_and_overflow() {
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1",
            "16MB",
            "99999999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn format_size_round_trips_through_parse_size() {
        for bytes in [0, 1, 125, 1024, 1536, 16 << 20, 3 << 30] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(1536), "1536");
    }
}
