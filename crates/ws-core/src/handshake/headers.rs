//! An ordered HTTP header list and the token-list helpers the handshake needs.

use std::fmt;

/// One HTTP header field as it appeared on the wire.
///
/// The name keeps its original case and the value its original bytes, so that
/// callers can log or forward exactly what the peer sent; lookups through
/// [`Headers`] do the case-insensitive matching.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name as sent (compare with `eq_ignore_ascii_case`).
    pub name: String,
    /// The field value bytes as sent; HTTP allows non-UTF-8 (obs-text) here.
    pub value: Vec<u8>,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are almost always text; showing them as text keeps logs readable.
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &String::from_utf8_lossy(&self.value))
            .finish()
    }
}

/// The header fields of a request or response head, in wire order.
///
/// Duplicates are kept: HTTP list-valued fields such as `Connection` or
/// `Sec-WebSocket-Protocol` may legitimately be split over several lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// Creates an empty header list, for building heads by hand (tests, proxies).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a header, keeping any earlier field of the same name.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The first field named `name` as text, trimmed of optional whitespace.
    ///
    /// Returns `None` when the field is absent or its value is not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        let value = std::str::from_utf8(self.get(name)?).ok()?;
        Some(trim_ows_str(value))
    }

    /// The values of every field named `name`, in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Whether at least one field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether any field named `name`, read as a comma-separated token list,
    /// contains `token` (ASCII case-insensitive).
    ///
    /// This is how `Connection` and `Upgrade` must be read: browsers send
    /// values such as `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|value| {
            value
                .split(|&b| b == b',')
                .any(|element| trim_ows(element).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Every non-empty comma-separated element across all fields named `name`,
    /// trimmed, in wire order.
    ///
    /// Used for `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`, which
    /// a client may spread over several lines. Non-UTF-8 bytes are replaced
    /// with U+FFFD so that a bad element cannot match anything by accident.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get_all(name)
            .flat_map(|value| value.split(|&b| b == b','))
            .map(trim_ows)
            .filter(|element| !element.is_empty())
            .map(|element| String::from_utf8_lossy(element).into_owned())
            .collect()
    }

    /// Iterates over all fields in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The number of fields, counting duplicates.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Header>> for Headers {
    fn from(headers: Vec<Header>) -> Self {
        Self(headers)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Copies the headers httparse found into an owned [`Headers`].
pub(super) fn from_httparse(parsed: &[httparse::Header<'_>]) -> Headers {
    Headers(
        parsed
            .iter()
            .map(|h| Header {
                name: h.name.to_owned(),
                value: h.value.to_vec(),
            })
            .collect(),
    )
}

/// Whether `s` is an HTTP `token` (RFC 9110 §5.6.2): the syntax of header
/// names, subprotocol names and extension names.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims HTTP optional whitespace (SP / HTAB) only: other bytes are content.
pub(super) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

pub(super) fn trim_ows_str(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Writes `name: value\r\n` into a head being built.
///
/// Names and values often come from application code or command-line input;
/// a CR or LF in them would let that input forge extra header lines or end the
/// head early (response splitting). So a field with a non-token name is
/// dropped, and control characters other than HTAB in a value become spaces.
pub(super) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    if !is_token(name) {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(|b| {
        if b.is_ascii_control() && b != b'\t' {
            b' '
        } else {
            b
        }
    }));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in fields {
            h.push(*name, value.as_bytes());
        }
        h
    }

    #[test]
    fn get_matches_names_case_insensitively_and_returns_the_first() {
        let h = headers(&[("X-A", "one"), ("x-a", "two")]);
        assert_eq!(h.get("X-a"), Some(&b"one"[..]));
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn get_str_trims_optional_whitespace_only() {
        let h = headers(&[("Host", " \texample.com \t")]);
        assert_eq!(h.get_str("host"), Some("example.com"));
    }

    #[test]
    fn get_str_is_none_for_non_utf8_values() {
        let mut h = Headers::new();
        h.push("X", vec![0xff, 0xfe]);
        assert!(h.contains("x"));
        assert_eq!(h.get_str("x"), None);
    }

    #[test]
    fn get_all_returns_every_occurrence_in_order() {
        let h = headers(&[("A", "1"), ("B", "x"), ("a", "2")]);
        let all: Vec<&[u8]> = h.get_all("A").collect();
        assert_eq!(all, vec![&b"1"[..], &b"2"[..]]);
    }

    #[test]
    fn connection_header_is_a_comma_separated_token_list() {
        let h = headers(&[("Connection", "keep-alive, Upgrade")]);
        assert!(h.has_token("connection", "upgrade"));
        assert!(h.has_token("Connection", "KEEP-ALIVE"));
        assert!(!h.has_token("Connection", "close"));
    }

    #[test]
    fn has_token_does_not_match_substrings() {
        let h = headers(&[("Upgrade", "websocketx, notwebsocket")]);
        assert!(!h.has_token("Upgrade", "websocket"));
    }

    #[test]
    fn has_token_looks_at_every_occurrence() {
        let h = headers(&[("Connection", "keep-alive"), ("Connection", "\tUpgrade ")]);
        assert!(h.has_token("connection", "upgrade"));
    }

    #[test]
    fn list_joins_occurrences_and_skips_empty_elements() {
        let h = headers(&[
            ("Sec-WebSocket-Protocol", "chat, , superchat"),
            ("sec-websocket-protocol", " v2 ,"),
        ]);
        assert_eq!(
            h.list("Sec-WebSocket-Protocol"),
            vec!["chat", "superchat", "v2"]
        );
        assert!(h.list("Sec-WebSocket-Extensions").is_empty());
    }

    #[test]
    fn len_and_is_empty_count_duplicates() {
        assert!(Headers::new().is_empty());
        let h = headers(&[("A", "1"), ("a", "2")]);
        assert_eq!(h.len(), 2);
        assert!(!h.is_empty());
        assert_eq!(h.iter().count(), 2);
    }

    #[test]
    fn token_syntax_excludes_separators_and_empty() {
        assert!(is_token("permessage-deflate"));
        assert!(is_token("Sec-WebSocket-Key"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a,b"));
        assert!(!is_token("a:b"));
    }

    #[test]
    fn write_header_neutralises_line_breaks_in_values() {
        let mut out = Vec::new();
        write_header(&mut out, "X-Test", "a\r\nInjected: yes");
        assert_eq!(out, b"X-Test: a  Injected: yes\r\n");
    }

    #[test]
    fn write_header_drops_fields_with_invalid_names() {
        let mut out = Vec::new();
        write_header(&mut out, "Bad\r\nName", "v");
        write_header(&mut out, "", "v");
        assert!(out.is_empty());
    }

    #[test]
    fn trim_ows_handles_all_whitespace_and_empty_input() {
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b" a b "), b"a b");
    }
}
