//! URLs as people type them: `127.0.0.1:8000`, `localhost:8000/chat`,
//! `http://...`. Each is turned into the `ws://`/`wss://` URL it means, with
//! a note saying so; anything else is left for the URL parser to judge.

/// The URL `typed` means, and a note for stderr when it was rewritten.
pub fn normalize(typed: &str) -> (String, Option<String>) {
    let typed = typed.trim();
    if let Some((scheme, rest)) = typed.split_once("://") {
        let mapped = match scheme.to_ascii_lowercase().as_str() {
            "http" => "ws",
            "https" => "wss",
            _ => return (typed.to_owned(), None),
        };
        let url = format!("{mapped}://{rest}");
        let note = format!("note: {scheme}:// means {mapped}:// here; connecting to {url}");
        return (url, Some(note));
    }
    if looks_like_host_and_port(typed) {
        let scheme = if port_of(typed) == Some("443") {
            "wss"
        } else {
            "ws"
        };
        let url = format!("{scheme}://{typed}");
        let note = format!("note: connecting to {url}");
        return (url, Some(note));
    }
    (typed.to_owned(), None)
}

/// Whether `head` starts a TLS record: content type alert (21) or
/// handshake (22), then protocol version 3.x (SSL 3.0 to TLS 1.3).
pub fn is_tls_record(head: &[u8]) -> bool {
    matches!(head, [21 | 22, 3, 0..=4, ..])
}

/// `HOST:PORT[/...]` or `[V6]:PORT[/...]` without a scheme: the host is made
/// of name characters and the port of digits.
fn looks_like_host_and_port(typed: &str) -> bool {
    let authority = typed.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some(parts) => parts,
        None => return false,
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.ends_with(']')
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    host_ok && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit())
}

fn port_of(typed: &str) -> Option<&str> {
    let authority = typed.split(['/', '?']).next()?;
    authority.rsplit_once(':').map(|(_, port)| port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_and_wss_urls_are_kept_without_a_note() {
        assert_eq!(normalize("ws://h:1/x"), ("ws://h:1/x".to_owned(), None));
        assert_eq!(normalize("wss://h/"), ("wss://h/".to_owned(), None));
    }

    #[test]
    fn host_and_port_get_a_scheme() {
        assert_eq!(normalize("127.0.0.1:8000").0, "ws://127.0.0.1:8000");
        assert_eq!(
            normalize("localhost:8000/path?q=1").0,
            "ws://localhost:8000/path?q=1"
        );
        assert_eq!(normalize("[::1]:9001/").0, "ws://[::1]:9001/");
        assert_eq!(normalize("example.com:443").0, "wss://example.com:443");
        assert!(
            normalize("localhost:8000")
                .1
                .unwrap()
                .contains("ws://localhost:8000")
        );
    }

    #[test]
    fn http_and_https_map_to_ws_and_wss_with_a_note() {
        let (url, note) = normalize("http://example.com/chat");
        assert_eq!(url, "ws://example.com/chat");
        assert!(note.unwrap().contains("http:// means ws://"));
        assert_eq!(normalize("HTTPS://example.com/").0, "wss://example.com/");
    }

    #[test]
    fn tls_records_are_recognised() {
        assert!(is_tls_record(b"\x15\x03\x01\x00\x02"));
        assert!(is_tls_record(b"\x16\x03\x03"));
        assert!(!is_tls_record(b"HTTP/1.1 400"));
        assert!(!is_tls_record(b"\x15\x03"));
    }

    #[test]
    fn other_text_is_left_for_the_parser() {
        for typed in ["not a url", "ftp://x/", "example.com", "host:port", ":80"] {
            assert_eq!(normalize(typed), (typed.to_owned(), None), "{typed}");
        }
    }
}
