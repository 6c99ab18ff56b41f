//! Unit tests for filters, tests, lazy variables, undefined handling and native types.
//!
//! Expected values were checked against ansible-core 2.19 (`ansible localhost -m debug`).

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::{HostVars, Map, Scope, Templar, TemplateError};

fn scope(vars: Json) -> Scope {
    match vars {
        Json::Object(map) => Scope::new(map),
        _ => Scope::new(Map::new()),
    }
}

fn vars() -> Scope {
    scope(json!({
        "base": "/srv",
        "app_name": "shop",
        "app_root": "{{ base }}/apps/{{ app_name }}",
        "nested": {"a": "{{ base }}/n", "l": ["{{ base }}", 2, "{{ 40 + 2 }}"]},
        "num": "{{ 40 + 2 }}",
        "flag": true,
        "nothing": null,
        "d": {"a": 1, "b": [1, "x", null, true, 1.5]},
        "users": [
            {"name": "alice", "uid": 1001, "shell": "/bin/bash", "groups": ["wheel", "dev"]},
            {"name": "bob", "uid": 1002, "groups": []}
        ],
        "s": "hello World",
        "csv": "a,b,,c",
        "cycle_a": "{{ cycle_b }}",
        "cycle_b": "{{ cycle_a }}",
        "broken": "{{ no_such_var }}",
        "version": "1.2.3"
    }))
}

/// Renders `{{ expr }}` inside text (string form, as a template file would).
fn render(expr: &str) -> String {
    let t = Templar::new();
    match t.template_str(&format!("<{{{{ {expr} }}}}>"), &vars()) {
        Ok(Json::String(s)) => s.trim_start_matches('<').trim_end_matches('>').to_string(),
        other => panic!("{expr}: {other:?}"),
    }
}

/// The native value of `{{ expr }}`.
fn native(expr: &str) -> Json {
    Templar::new()
        .template_str(&format!("{{{{ {expr} }}}}"), &vars())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn error(expr: &str) -> TemplateError {
    match Templar::new().template_str(&format!("{{{{ {expr} }}}}"), &vars()) {
        Err(e) => e,
        Ok(v) => panic!("{expr}: expected an error, got {v}"),
    }
}

#[test]
fn python_rendering_of_values() {
    assert_eq!(render("d"), "{'a': 1, 'b': [1, 'x', None, True, 1.5]}");
    assert_eq!(render("1.0"), "1.0");
    assert_eq!(render("1e20"), "1e+20");
    assert_eq!(render("true"), "True");
    assert_eq!(render("none"), "");
    assert_eq!(render("[none]"), "[None]");
    assert_eq!(render("\"it's\""), "it's");
    assert_eq!(render("[\"it's\"]"), "[\"it's\"]");
    assert_eq!(render("7 / 2"), "3.5");
    assert_eq!(render("4 / 2"), "2.0");
}

#[test]
fn native_types_for_lone_expressions() {
    assert_eq!(native("num"), json!(42));
    assert_eq!(native("d.b"), json!([1, "x", null, true, 1.5]));
    assert_eq!(native("flag"), json!(true));
    assert_eq!(native("nothing"), json!(null));
    assert_eq!(native("'42'"), json!("42"));
    let t = Templar::new();
    assert_eq!(
        t.template_str(" {{ 42 }} ", &vars()).ok(),
        Some(json!(" 42 "))
    );
    assert_eq!(
        t.template_str("{{ [1, 2] }}\n", &vars()).ok(),
        Some(json!([1, 2]))
    );
    assert_eq!(
        t.template_str("{{ 1 }}{{ 2 }}", &vars()).ok(),
        Some(json!("12"))
    );
    assert_eq!(t.template_str("plain", &vars()).ok(), Some(json!("plain")));
}

#[test]
fn lazy_variables_resolve_on_access() {
    assert_eq!(native("app_root"), json!("/srv/apps/shop"));
    assert_eq!(
        native("nested"),
        json!({"a": "/srv/n", "l": ["/srv", 2, 42]})
    );
    assert_eq!(native("nested.l[2] + 1"), json!(43));
    assert_eq!(render("nested"), "{'a': '/srv/n', 'l': ['/srv', 2, 42]}");
}

#[test]
fn cycles_are_reported() {
    let e = error("cycle_a");
    assert!(
        e.message.contains("Recursive loop detected"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("cycle_a -> cycle_b -> cycle_a"),
        "{}",
        e.message
    );
}

#[test]
fn undefined_variables_fail_with_their_name() {
    let e = error("foo");
    assert_eq!(e.message, "'foo' is undefined");
    assert_eq!(e.undefined.as_deref(), Some("foo"));
    assert_eq!(error("foo | upper").message, "'foo' is undefined");
    assert_eq!(error("foo + 1").message, "'foo' is undefined");
    assert_eq!(error("foo == 1").message, "'foo' is undefined");
    assert_eq!(
        error("d.missing").message,
        "object of type 'dict' has no attribute 'missing'"
    );
    assert_eq!(
        error("d.missing.deeper").message,
        "object of type 'dict' has no attribute 'missing'"
    );
    assert_eq!(
        error("users[5]").message,
        "object of type 'list' has no attribute 5"
    );
    assert_eq!(error("broken").message, "'no_such_var' is undefined");
    let t = Templar::new();
    let e = t
        .template_str("{% for x in foo %}{{ x }}{% endfor %}", &vars())
        .err();
    assert_eq!(e.map(|e| e.message), Some("'foo' is undefined".to_string()));
    assert!(t.eval_bool("foo == 1", &vars()).is_err());
    assert!(t.eval_bool("foo", &vars()).is_err());
}

#[test]
fn guarded_undefined_values_do_not_fail() {
    assert_eq!(native("foo | default('x')"), json!("x"));
    assert_eq!(native("foo.bar | default('x')"), json!("x"));
    assert_eq!(native("foo.bar is defined"), json!(false));
    assert_eq!(native("d.missing.deeper | default('x')"), json!("x"));
    assert_eq!(native("foo is undefined"), json!(true));
    assert_eq!(native("broken | default('d')"), json!("d"));
    assert_eq!(native("broken is defined"), json!(false));
    assert_eq!(
        native("users | selectattr('shell', 'defined') | map(attribute='name') | list"),
        json!(["alice"])
    );
    assert_eq!(
        native("users | map(attribute='shell', default='none') | list"),
        json!(["/bin/bash", "none"])
    );
    assert_eq!(native("d.get('z', 5)"), json!(5));
    let t = Templar::new();
    assert_eq!(
        t.eval_bool("foo is defined and foo.x", &vars()).ok(),
        Some(false)
    );
}

struct TwoHosts;

impl HostVars for TwoHosts {
    fn host_names(&self) -> Vec<String> {
        vec!["web1".into(), "db1".into()]
    }
    fn vars_of(&self, host: &str) -> Option<Arc<Map>> {
        let v = match host {
            "web1" => {
                json!({"inventory_hostname": "web1", "port": "{{ base_port + 1 }}", "base_port": 8000})
            }
            "db1" => json!({"inventory_hostname": "db1", "ansible_host": "10.0.0.5"}),
            _ => return None,
        };
        match v {
            Json::Object(m) => Some(Arc::new(m)),
            _ => None,
        }
    }
}

#[test]
fn hostvars_resolve_in_the_hosts_own_scope() {
    let mut s = vars();
    s.hostvars = Some(Arc::new(TwoHosts));
    let t = Templar::new();
    let get = |e: &str| t.template_str(&format!("{{{{ {e} }}}}"), &s);
    assert_eq!(get("hostvars['web1'].port").ok(), Some(json!(8001)));
    assert_eq!(
        get("hostvars.db1['ansible_host']").ok(),
        Some(json!("10.0.0.5"))
    );
    assert_eq!(
        get("hostvars['nope'].x | default('none')").ok(),
        Some(json!("none"))
    );
    assert_eq!(
        get("hostvars | dictsort | map('first') | list").ok(),
        Some(json!(["db1", "web1"]))
    );
}
