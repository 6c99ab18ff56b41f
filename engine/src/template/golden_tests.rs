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
