//! Parsers for the option values that `ws-client` and `ws-bench` share:
//! request headers, subprotocols, the Origin, durations and sizes.
//!
//! They return one-line messages; clap prints them as usage errors (exit
//! status 2) before anything connects. They live here, not in ws-client,
//! because ws-client depends on this crate (for `ws-client bench`) and not
//! the other way round.

use std::time::Duration;

use ws_core::handshake::{ClientRequest, is_token};

/// Headers the handshake writes itself; a second copy would break it.
/// (`Host` is not among them: [`apply_headers`] makes it replace the one
/// taken from the URL.)
const MANAGED_HEADERS: [(&str, &str); 7] = [
    ("upgrade", "the handshake sets it"),
    ("connection", "the handshake sets it"),
    ("sec-websocket-key", "the handshake sets it"),
    ("sec-websocket-version", "the handshake sets it"),
    ("sec-websocket-protocol", "use --protocol"),
    ("sec-websocket-extensions", "extensions are not supported"),
    ("origin", "use --origin"),
];

/// Parses `Name: value` into a header. The name must be an HTTP token and
/// the value may not contain control characters (other than tab).
pub fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {arg:?}"))?;
    let name = name.trim();
    if !is_token(name) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if let Some((_, why)) = MANAGED_HEADERS
        .iter()
        .find(|(managed, _)| managed.eq_ignore_ascii_case(name))
    {
        return Err(format!("the {name} header cannot be set with -H: {why}"));
    }
    let value = value.trim_matches([' ', '\t']);
    check_field_value(value)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Adds `-H` headers to `request`; a `Host` header replaces the one built
/// from the URL ([`ClientRequest::host_header`]: the TCP connection and
/// TLS still use the URL's host), the last one winning.
pub fn apply_headers(
    mut request: ClientRequest,
    headers: &[(String, String)],
) -> Result<ClientRequest, String> {
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            request = request
                .host_header(value.clone())
                .map_err(|error| error.to_string())?;
        } else {
            request = request.header(name.clone(), value.clone());
        }
    }
    Ok(request)
}

/// Parses a `--host` value: a Host header value (`name[:port]`).
pub fn parse_host(arg: &str) -> Result<String, String> {
    if arg.is_empty() || arg.trim_matches([' ', '\t']) != arg {
        return Err(format!(
            "{arg:?} is not a host (e.g. example.com or example.com:8080)"
        ));
    }
    check_field_value(arg)?;
    Ok(arg.to_owned())
}

/// Parses `user:password` for Basic authentication.
pub fn parse_auth(arg: &str) -> Result<String, String> {
    if !arg.contains(':') {
        return Err("expected USER:PASSWORD".to_owned());
    }
    check_field_value(arg)?;
    Ok(arg.to_owned())
}

/// Parses a subprotocol name (an HTTP token).
pub fn parse_protocol(arg: &str) -> Result<String, String> {
    if is_token(arg) {
        Ok(arg.to_owned())
    } else {
        Err(format!(
            "{arg:?} is not a valid subprotocol name (letters, digits and !#$%&'*+-.^_`|~)"
        ))
    }
}

/// Parses an Origin value.
pub fn parse_origin(arg: &str) -> Result<String, String> {
    check_field_value(arg)?;
    Ok(arg.to_owned())
}

fn check_field_value(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        Err("header values cannot contain control characters".to_owned())
    } else {
        Ok(())
    }
}

/// Parses a duration: `10s`, `500ms`, `2m`, `1h`, or plain (possibly
/// fractional) seconds.
pub fn parse_duration(arg: &str) -> Result<Duration, String> {
    let arg = arg.trim();
    let split = arg
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let seconds_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {arg:?}; use ms, s, m or h (e.g. '10s', '500ms')"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{arg:?} is not a duration (e.g. '10s', '500ms', '2')"))?;
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("{arg:?} is out of range"))
}

/// Parses a size in bytes: a plain number, or with a binary suffix
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`, case-insensitive). Zero is refused.
pub fn parse_size(arg: &str) -> Result<usize, String> {
    let arg = arg.trim();
    let split = arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {arg:?}; use KiB, MiB or GiB (e.g. '64KiB')"
            ));
        }
    };
    let value: usize = number
        .parse()
        .map_err(|_| format!("{arg:?} is not a size (e.g. '1048576', '64KiB', '16MiB')"))?;
    let size = value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{arg:?} is too large"))?;
    if size == 0 {
        return Err("the size must be greater than zero".to_owned());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_split_at_the_first_colon_and_trimmed() {
        assert_eq!(
            parse_header("X-Token:  a:b \t"),
            Ok(("X-Token".to_owned(), "a:b".to_owned()))
        );
        assert_eq!(
            parse_header("Authorization: Bearer x"),
            Ok(("Authorization".to_owned(), "Bearer x".to_owned()))
        );
    }

    #[test]
    fn header_with_empty_value_is_allowed() {
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".to_owned(), String::new()))
        );
    }

    #[test]
    fn header_without_colon_is_refused() {
        assert!(
            parse_header("X-Token 42")
                .unwrap_err()
                .contains("Name: value")
        );
    }

    #[test]
    fn header_name_must_be_a_token() {
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header(": x").is_err());
    }

    #[test]
    fn a_host_header_replaces_the_url_host_in_the_request() {
        let header = parse_header("host: example.com").unwrap();
        let request = ClientRequest::from_parts(false, "127.0.0.1", 9, "/").unwrap();
        let request = apply_headers(request, &[header, ("X-A".into(), "1".into())]).unwrap();
        let text = String::from_utf8(request.to_bytes()).unwrap();
        assert!(text.contains("\r\nHost: example.com\r\n"), "{text}");
        assert_eq!(
            text.to_ascii_lowercase().matches("host:").count(),
            1,
            "{text}"
        );
        assert!(text.contains("\r\nX-A: 1\r\n"), "{text}");
        assert_eq!(request.host(), "127.0.0.1");
        assert!(parse_host(" x").is_err());
        assert_eq!(parse_host("x:1").unwrap(), "x:1");
    }

    #[test]
    fn header_value_with_line_break_is_refused() {
        assert!(parse_header("X-A: a\r\nX-B: b").is_err());
    }

    #[test]
    fn headers_the_handshake_writes_are_refused_with_a_hint() {
        assert!(parse_header("Sec-WebSocket-Key: abc").is_err());
        assert!(
            parse_header("Sec-WebSocket-Protocol: chat")
                .unwrap_err()
                .contains("--protocol")
        );
        assert!(parse_header("Origin: x").unwrap_err().contains("--origin"));
    }

    #[test]
    fn auth_needs_a_colon() {
        assert_eq!(parse_auth("user:pa:ss"), Ok("user:pa:ss".to_owned()));
        assert!(parse_auth("user").is_err());
    }

    #[test]
    fn protocol_must_be_a_token() {
        assert_eq!(parse_protocol("chat.v1"), Ok("chat.v1".to_owned()));
        assert!(parse_protocol("chat v1").is_err());
        assert!(parse_protocol("").is_err());
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_refused() {
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16 M"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    }

    #[test]
    fn malformed_or_zero_sizes_are_refused() {
        assert!(parse_size("0").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
