//! `--jsonrpc`: each input line becomes a JSON-RPC 2.0 request.
//!
//! The line syntax is `method [params]`: the method name up to the first
//! whitespace, then optionally the params as JSON, which JSON-RPC 2.0
//! (section 4.2) requires to be an array or an object. Ids count from 1.
//! `add [1, 2]` is sent as
//! `{"id":1,"jsonrpc":"2.0","method":"add","params":[1,2]}`.

use serde_json::{Map, Value};

/// Numbers the requests of one run.
#[derive(Debug, Clone)]
pub struct JsonRpc {
    next_id: u64,
}

impl Default for JsonRpc {
    fn default() -> Self {
        Self { next_id: 1 }
    }
}

impl JsonRpc {
    /// The request for `line`, or why the line is not `method [params]`.
    /// An id is used up only by a valid line.
    pub fn request(&mut self, line: &str) -> Result<String, String> {
        let line = line.trim();
        let (method, params) = match line.split_once(char::is_whitespace) {
            Some((method, params)) => (method, params.trim()),
            None => (line, ""),
        };
        if method.is_empty() {
            return Err("expected 'method [params]', e.g. 'add [1, 2]'".to_owned());
        }
        let mut request = Map::new();
        request.insert("jsonrpc".to_owned(), Value::from("2.0"));
        request.insert("method".to_owned(), Value::from(method));
        if !params.is_empty() {
            let params: Value = serde_json::from_str(params)
                .map_err(|error| format!("the params of {method} are not JSON: {error}"))?;
            if !(params.is_array() || params.is_object()) {
                return Err(format!(
                    "the params of {method} must be a JSON array or object, e.g. [1, 2] or {{\"a\": 1}}"
                ));
            }
            request.insert("params".to_owned(), params);
        }
        request.insert("id".to_owned(), Value::from(self.next_id));
        self.next_id += 1;
        Ok(Value::Object(request).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_numbered_requests() {
        let mut rpc = JsonRpc::default();
        assert_eq!(
            rpc.request("add [1, 2]").unwrap(),
            r#"{"id":1,"jsonrpc":"2.0","method":"add","params":[1,2]}"#
        );
        assert_eq!(
            rpc.request("  status  ").unwrap(),
            r#"{"id":2,"jsonrpc":"2.0","method":"status"}"#
        );
        assert_eq!(
            rpc.request(r#"login {"user": "ann"}"#).unwrap(),
            r#"{"id":3,"jsonrpc":"2.0","method":"login","params":{"user":"ann"}}"#
        );
    }

    #[test]
    fn bad_lines_are_refused_without_using_an_id() {
        let mut rpc = JsonRpc::default();
        assert!(rpc.request("").is_err());
        assert!(
            rpc.request("add 1")
                .unwrap_err()
                .contains("array or object")
        );
        assert!(rpc.request("add [1,").unwrap_err().contains("not JSON"));
        assert!(rpc.request("ping").unwrap().starts_with(r#"{"id":1,"#));
    }
}
