//! Golden tests: templates rendered by ansible-core 2.19 must render byte-identically here.
//!
//! Fixtures live in `engine/tests/fixtures/templates/` (see its README for how `expected/`
//! was produced).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::{Scope, Templar};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn scope() -> Scope {
    let dir = fixtures();
    let node = crate::yaml::load_one(&dir.join("vars.yml")).expect("vars.yml parses");
    let Json::Object(mut vars) = node.to_value() else {
        panic!("vars.yml is not a mapping");
    };
    vars.insert("playbook_dir".into(), Json::from(dir.display().to_string()));
    Scope::new(vars)
}

fn check(name: &str) {
    let dir = fixtures();
    let path = dir.join(format!("{name}.j2"));
    let source = std::fs::read_to_string(&path).expect("template readable");
    let expected =
        std::fs::read_to_string(dir.join("expected").join(name)).expect("expected output readable");
    let rendered = Templar::new()
        .render_file(&source, &path, &scope())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    if rendered != expected {
        let diff = similar::TextDiff::from_lines(&expected, &rendered);
        panic!(
            "{name} differs from ansible's output (- ansible, + ours):\n{}",
            diff.unified_diff()
        );
    }
}

#[test]
fn golden_nginx_conf() {
    check("nginx.conf");
}

#[test]
fn golden_env_file() {
    check("app.env");
}

#[test]
fn golden_crontab_with_jinja2_header() {
    check("crontab");
}

#[test]
fn golden_whitespace_control() {
    check("whitespace");
}

#[test]
fn golden_filters() {
    check("filters");
}

#[test]
fn golden_includes_and_macros() {
    check("includes");
}

/// Every expression in `expressions.txt`, as ansible-core evaluated it (`expressions.json`):
/// the native value of `{{ expr }}`, the text of `<{{ expr }}>`, or the error.
#[test]
fn golden_expressions() {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("expressions.json")).expect("expressions.json");
    let cases: Vec<Json> = serde_json::from_str(&text).expect("valid json");
    let templar = Templar::new();
    let mut scope = scope();
    // The expressions were evaluated from a playbook in a scratch directory.
    let mut vars = (*scope.vars.flat()).clone();
    vars.remove("playbook_dir");
    scope.vars = vars.into();
    let mut failures = Vec::new();
    for case in &cases {
        let expr = case["expr"].as_str().unwrap_or_default();
        let native = templar.template_str(&format!("{{{{ {expr} }}}}"), &scope);
        let string = templar.template_str(&format!("<{{{{ {expr} }}}}>"), &scope);
        if let Some(err) = case.get("error").and_then(Json::as_str) {
            match &native {
                Err(e) => {
                    // Plugin failures are worded by the plugin; undefined errors must match exactly.
                    let plugin = err.starts_with("The ") || err.starts_with("Error rendering");
                    if !plugin && e.message != err {
                        failures.push(format!(
                            "{expr}\n    ansible error: {err}\n    ours:          {}",
                            e.message
                        ));
                    }
                }
                Ok(v) => failures.push(format!(
                    "{expr}\n    ansible error: {err}\n    ours:          {v}"
                )),
            }
            continue;
        }
        match (&native, &case["native"]) {
            (Ok(ours), want) if ours == want => {}
            (ours, want) => failures.push(format!(
                "{expr}\n    ansible native: {want}\n    ours:           {ours:?}"
            )),
        }
        let want = Json::String(format!("<{}>", case["string"].as_str().unwrap_or_default()));
        match &string {
            Ok(ours) if *ours == want => {}
            ours => failures.push(format!(
                "{expr}\n    ansible string: {want}\n    ours:           {ours:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions differ from ansible:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
