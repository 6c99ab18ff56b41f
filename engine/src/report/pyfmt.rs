//! Python's text forms of data as Ansible's output prints them: `json.dumps(sort_keys=True)` and `repr()`.

use serde_json::Value;

use crate::template::pyjson;

/// `json.dumps(v, sort_keys=True, ensure_ascii=False, indent=indent)`, as the default callback prints results.
pub fn dump_json(v: &Value, indent: Option<usize>) -> String {
    let opts = pyjson::Options {
        indent: indent.map(|n| " ".repeat(n)),
        sort_keys: true,
        ensure_ascii: false,
        item_separator: if indent.is_some() {
            ",".into()
        } else {
            ", ".into()
        },
        key_separator: ": ".into(),
    };
    pyjson::dumps(v, &opts)
}

/// How a loop item is labelled in output: strings as they are, anything else as Python's repr.
pub fn item_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => modules::pyfmt::json_repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_like_python() {
        let v = json!({"b": [1, 2.0], "a": "é", "c": {}});
        assert_eq!(dump_json(&v, None), r#"{"a": "é", "b": [1, 2.0], "c": {}}"#);
        assert_eq!(
            dump_json(&json!({"msg": "hi"}), Some(4)),
            "{\n    \"msg\": \"hi\"\n}"
        );
    }

    #[test]
    fn labels_like_ansible() {
        assert_eq!(item_label(&json!("a")), "a");
        assert_eq!(item_label(&json!({"k": 1})), "{'k': 1}");
    }
}
