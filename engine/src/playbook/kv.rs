//! Ansible's `k=v` argument strings (`copy: src=a dest=b`, `command: ls chdir=/tmp`), parsed as Ansible's `parse_kv` does.

use serde_json::{Map, Value};

/// Keys a free-form module (command, shell, script, raw) takes out of its free-form text.
const FREE_FORM_KEYS: &[&str] = &[
    "chdir",
    "creates",
    "removes",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "argv",
];

/// Split a string into shell-like words the way Ansible's `split_args` does: quotes are kept
/// inside the words (they are removed later, per value) and `{{ }}` / `{% %}` never split.
pub fn split_args(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize; // inside {{ }} / {% %} / {# #}
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if quote.is_none() && c == '{' && matches!(next, Some('{' | '%' | '#')) {
            depth += 1;
            current.push(c);
            current.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if quote.is_none() && depth > 0 && matches!(c, '}' | '%' | '#') && next == Some('}') {
            depth -= 1;
            current.push(c);
            current.push('}');
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q && (i == 0 || chars[i - 1] != '\\') => {
                quote = None;
                current.push(c);
            }
            None if (c == '"' || c == '\'') && depth == 0 => {
                quote = Some(c);
                current.push(c);
            }
            None if c.is_whitespace() && depth == 0 => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
        i += 1;
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Remove one pair of matching outer quotes.
fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &s[1..s.len() - 1];
        if b[0] == b'"' {
            return inner.replace("\\\"", "\"");
        }
        return inner.to_string();
    }
    s.to_string()
}

/// Parse `k=v` words into a map. With `free_form`, words that are not `k=v` (or whose key is
/// not one of the free-form keys) form `_raw_params`, kept exactly as written.
pub fn parse_kv(text: &str, free_form: bool) -> Map<String, Value> {
    let mut map = Map::new();
    let mut raw: Vec<String> = Vec::new();
    for word in split_args(text) {
        let key_val = word.find('=').and_then(|eq| {
            let key = &word[..eq];
            let valid =
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid.then(|| (key.to_string(), word[eq + 1..].to_string()))
        });
        match key_val {
            Some((k, v)) if !free_form || FREE_FORM_KEYS.contains(&k.as_str()) => {
                map.insert(k, Value::String(unquote(&v)));
            }
            _ => raw.push(word),
        }
    }
    if free_form && !raw.is_empty() {
        map.insert("_raw_params".into(), Value::String(raw.join(" ")));
    } else if !raw.is_empty() {
        // A non-free-form module given bare words: keep them so the module can refuse them clearly.
        map.insert("_raw_params".into(), Value::String(raw.join(" ")));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_values_with_quotes_and_templates() {
        let m = parse_kv(
            r#"src=a.j2 dest="/etc/my file" msg='{{ a | default("x y") }}'"#,
            false,
        );
        assert_eq!(
            Value::Object(m),
            json!({"src": "a.j2", "dest": "/etc/my file", "msg": "{{ a | default(\"x y\") }}"})
        );
    }

    #[test]
    fn free_form_keeps_the_command_and_takes_its_keys() {
        let m = parse_kv("echo 'a b' {{ x }} > /tmp/o chdir=/srv creates=/x", true);
        assert_eq!(
            Value::Object(m),
            json!({"chdir": "/srv", "creates": "/x", "_raw_params": "echo 'a b' {{ x }} > /tmp/o"})
        );
    }
}
