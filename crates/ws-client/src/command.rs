//! What one line of input asks for: data to send, or a slash command.
//!
//! Slash commands follow wscat's: `/ping [data]`, `/pong [data]`,
//! `/close [code [reason]]`, `/binary <hex>`, `/help`; a line starting with
//! `//` sends a literal `/`.

use ws_core::CloseCode;
use ws_core::MAX_CONTROL_PAYLOAD;

use crate::cli::{parse_close_code, parse_close_reason};

/// The help printed by `/help`.
pub const COMMANDS_HELP: &str = "\
commands:
  /ping [data]            send a ping
  /pong [data]            send an unsolicited pong
  /close [code [reason]]  close the connection (default 1000)
  /binary <hex>           send bytes, e.g. /binary 48656c6c6f
  /help                   this list
  //text                  send a line that starts with '/'
  Ctrl-D                  close with 1000";

/// What a line of input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the bytes as a data message (text or binary, as configured).
    Data(Vec<u8>),
    /// Send these bytes as a binary message, whatever the mode.
    Binary(Vec<u8>),
    /// Send a ping with this payload.
    Ping(Vec<u8>),
    /// Send an unsolicited pong with this payload.
    Pong(Vec<u8>),
    /// Start the closing handshake.
    Close(CloseCode, String),
    /// Print the list of commands.
    Help,
}

/// Reads one line of input. With `commands` off every line is data; with it
/// on, a line starting with `/` is a command (`//` escapes a literal `/`).
/// A malformed command is an `Err` with a message for the user; nothing is
/// sent for it.
pub fn parse_line(line: Vec<u8>, commands: bool) -> Result<Action, String> {
    if !commands || line.first() != Some(&b'/') {
        return Ok(Action::Data(line));
    }
    if line.get(1) == Some(&b'/') {
        return Ok(Action::Data(line.get(1..).unwrap_or_default().to_vec()));
    }
    let text = String::from_utf8(line).map_err(|_| "commands must be valid UTF-8".to_owned())?;
    parse_command(&text)
}

/// Parses a command line that starts with a single `/`.
fn parse_command(line: &str) -> Result<Action, String> {
    let body = line.strip_prefix('/').unwrap_or(line);
    let (name, rest) = match body.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim_start()),
        None => (body, ""),
    };
    match name {
        "ping" => control_payload(rest).map(Action::Ping),
        "pong" => control_payload(rest).map(Action::Pong),
        "close" => parse_close(rest),
        "binary" => {
            if rest.trim().is_empty() {
                return Err("usage: /binary <hex>, e.g. /binary 48656c6c6f".to_owned());
            }
            decode_hex(rest).map(Action::Binary)
        }
        "help" | "?" => Ok(Action::Help),
        _ => Err(format!(
            "unknown command /{name}; /help lists the commands, //{name} sends the text"
        )),
    }
}

fn control_payload(data: &str) -> Result<Vec<u8>, String> {
    if data.len() > MAX_CONTROL_PAYLOAD {
        return Err(format!(
            "control frame data is limited to {MAX_CONTROL_PAYLOAD} bytes, got {}",
            data.len()
        ));
    }
    Ok(data.as_bytes().to_vec())
}

fn parse_close(args: &str) -> Result<Action, String> {
    let args = args.trim();
    if args.is_empty() {
        return Ok(Action::Close(CloseCode::NORMAL, String::new()));
    }
    let (code, reason) = match args.split_once(char::is_whitespace) {
        Some((code, reason)) => (code, reason.trim()),
        None => (args, ""),
    };
    let code = parse_close_code(code)?;
    let reason = parse_close_reason(reason)?;
    Ok(Action::Close(code, reason))
}

/// Decodes hexadecimal digits; spaces and colons between bytes are allowed
/// (`48 65 6c`, `48:65:6c`) so that dumps can be pasted.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b':'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("hex needs two digits per byte".to_owned());
    }
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Ok(hex_value(*high)? << 4 | hex_value(*low)?),
            _ => Err("hex needs two digits per byte".to_owned()),
        })
        .collect()
}

fn hex_value(digit: u8) -> Result<u8, String> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", char::from(digit))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Action, String> {
        parse_line(line.as_bytes().to_vec(), true)
    }

    #[test]
    fn plain_line_is_data() {
        assert_eq!(parse("hello"), Ok(Action::Data(b"hello".to_vec())));
        assert_eq!(parse(""), Ok(Action::Data(Vec::new())));
    }

    #[test]
    fn without_commands_a_slash_line_is_data() {
        assert_eq!(
            parse_line(b"/close".to_vec(), false),
            Ok(Action::Data(b"/close".to_vec()))
        );
    }

    #[test]
    fn double_slash_sends_a_literal_slash() {
        assert_eq!(parse("//close"), Ok(Action::Data(b"/close".to_vec())));
        assert_eq!(parse("//"), Ok(Action::Data(b"/".to_vec())));
    }

    #[test]
    fn ping_and_pong_take_optional_data() {
        assert_eq!(parse("/ping"), Ok(Action::Ping(Vec::new())));
        assert_eq!(
            parse("/ping hello there"),
            Ok(Action::Ping(b"hello there".to_vec()))
        );
        assert_eq!(parse("/pong x"), Ok(Action::Pong(b"x".to_vec())));
    }

    #[test]
    fn ping_data_over_125_bytes_is_refused() {
        assert!(parse(&format!("/ping {}", "x".repeat(126))).is_err());
        assert!(parse(&format!("/ping {}", "x".repeat(125))).is_ok());
    }

    #[test]
    fn close_defaults_to_1000() {
        assert_eq!(
            parse("/close"),
            Ok(Action::Close(CloseCode::NORMAL, String::new()))
        );
    }

    #[test]
    fn close_takes_code_and_reason() {
        assert_eq!(
            parse("/close 4000 going home now"),
            Ok(Action::Close(CloseCode(4000), "going home now".to_owned()))
        );
        assert_eq!(
            parse("/close 1001"),
            Ok(Action::Close(CloseCode::GOING_AWAY, String::new()))
        );
    }

    #[test]
    fn close_with_unsendable_code_is_refused() {
        assert!(parse("/close 1005").is_err());
        assert!(parse("/close soon").is_err());
    }

    #[test]
    fn binary_decodes_hex() {
        assert_eq!(
            parse("/binary 48656c6c6f"),
            Ok(Action::Binary(b"Hello".to_vec()))
        );
        assert_eq!(
            parse("/binary 00 FF:7f"),
            Ok(Action::Binary(vec![0, 255, 127]))
        );
    }

    #[test]
    fn binary_with_bad_hex_is_refused() {
        assert!(parse("/binary").is_err());
        assert!(parse("/binary 123").is_err());
        assert!(parse("/binary zz").is_err());
    }

    #[test]
    fn unknown_command_is_refused_with_a_hint() {
        let error = parse("/frobnicate").unwrap_err();
        assert!(error.contains("unknown command /frobnicate"), "{error}");
        assert!(error.contains("/help"), "{error}");
    }

    #[test]
    fn help_is_a_command() {
        assert_eq!(parse("/help"), Ok(Action::Help));
    }
}
