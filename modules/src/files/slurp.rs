//! The `slurp` module: a whole file from the target, base64-encoded, in one exec.

use base64::Engine;
use serde::Deserialize;

use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script};

/// `slurp`.
pub struct Slurp;

#[derive(Debug, Deserialize)]
struct SlurpArgs {
    #[serde(alias = "path")]
    src: String,
}

/// Exit statuses of the read script, one per Ansible message.
const NOT_FOUND: i32 = 3;
const IS_DIR: i32 = 4;
const UNREADABLE: i32 = 5;

impl Module for Slurp {
    fn name(&self) -> &'static str {
        "slurp"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<SlurpArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: SlurpArgs = args::parse("slurp", args)?;
        let script = Script::new().set("p", &a.src).raw(
            "\ncase $p in '~'|'~/'*) p=$HOME${p#'~'};; esac\n\
             if [ -d \"$p\" ]; then exit 4; fi\n\
             if [ ! -e \"$p\" ]; then exit 3; fi\n\
             if [ ! -r \"$p\" ]; then exit 5; fi\n\
             exec cat -- \"$p\"",
        );
        let out = ctx.host.exec(&Cmd::script(script))?;
        let src = &a.src;
        let msg = match out.status {
            0 => {
                let content = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
                return Ok(Outcome::ok()
                    .with("content", content)
                    .with("source", src.as_str())
                    .with("encoding", "base64"));
            }
            NOT_FOUND => format!("File not found: {src}"),
            IS_DIR => format!("Source is a directory and must be a file: {src}"),
            UNREADABLE => format!("File is not readable: {src}"),
            _ if out.stderr_str().contains("Permission denied") => {
                format!("File is not readable: {src}")
            }
            _ => format!("Unable to slurp file: {src}"),
        };
        Ok(Outcome::failed(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit;
    use crate::Value;
    use serde_json::json;

    fn run(args: Value, check: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&Slurp, args, check, false)
    }

    #[test]
    fn reads_binary_content_under_a_hostile_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a 'b' \"c\" $(x) `y`\nz");
        let data = b"\x00\xffbin\nary'\"$(x)";
        std::fs::write(&path, data).expect("write");
        let p = path.to_str().expect("utf-8");
        for check in [false, true] {
            let out = run(json!({"src": p}), check).expect("runs");
            assert!(!out.changed && !out.failed);
            assert_eq!(out.result["encoding"], json!("base64"));
            assert_eq!(out.result["source"], json!(p));
            let content = out.result["content"].as_str().expect("string");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(content)
                .expect("base64");
            assert_eq!(decoded, data);
        }
        let out = run(json!({"path": p}), false).expect("alias");
        assert!(!out.failed);
    }

    #[test]
    fn failures_use_ansibles_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let out = run(json!({"src": format!("{d}/missing")}), false).expect("runs");
        assert!(out.failed);
        assert_eq!(out.msg, Some(format!("File not found: {d}/missing")));
        let out = run(json!({"src": d}), false).expect("runs");
        assert_eq!(
            out.msg,
            Some(format!("Source is a directory and must be a file: {d}"))
        );
        let err = run(json!({}), false).expect_err("refused");
        assert_eq!(err.to_string(), "missing required arguments: src");
    }
}
