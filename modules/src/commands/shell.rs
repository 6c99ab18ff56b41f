//! The `shell` module: the user's text run by `/bin/sh -c` (or `executable -c`) on the
//! target, with `command`'s chdir/creates/removes/stdin handling (one exec).
//!
//! As in Ansible, `shell` is `command` with `_uses_shell`: the same result keys, except
//! that `cmd` is the text as written. `expand_argument_vars` is refused as Ansible's shell
//! action refuses it (the shell itself expands).

use serde::Deserialize;

use super::command::{one_source, run, stdin_bytes, Program, Request};
use super::support::yes;
use crate::{args, Ctx, Map, Module, ModuleError, Outcome};

/// `shell`.
pub struct Shell;

#[derive(Debug, Deserialize)]
struct ShellArgs {
    _raw_params: Option<String>,
    /// Sent by engines that treat `shell` as `command` with a flag; always true here.
    #[serde(default)]
    #[allow(dead_code)]
    _uses_shell: bool,
    cmd: Option<String>,
    argv: Option<Vec<String>>,
    chdir: Option<String>,
    executable: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    stdin: Option<String>,
    #[serde(default = "yes")]
    stdin_add_newline: bool,
    #[serde(default = "yes")]
    strip_empty_ends: bool,
}

impl Module for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<ShellArgs>()
    }
    fn free_form(&self) -> bool {
        true
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        if args.contains_key("expand_argument_vars") {
            return Err(ModuleError::Args(
                "Unsupported parameters for (shell) module: expand_argument_vars".into(),
            ));
        }
        let a: ShellArgs = args::parse("shell", args)?;
        let source = one_source(a._raw_params, a.cmd, a.argv)?;
        run(
            ctx,
            Request {
                program: Program::shell(source, a.executable),
                chdir: a.chdir,
                creates: a.creates,
                removes: a.removes,
                stdin: stdin_bytes(a.stdin, a.stdin_add_newline),
                strip: a.strip_empty_ends,
                warnings: Vec::new(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::run_module;
    use super::*;
    use serde_json::{json, Value};

    fn ok(args: Value) -> Map {
        run_module(&Shell, false, args)
            .expect("module runs")
            .to_result()
    }

    #[test]
    fn runs_shell_text_and_reports_the_text_as_cmd() {
        let r = ok(json!({"_raw_params": "echo $((1+2)) | tr 3 x; printf 'a\\n\\n\\n'"}));
        assert_eq!(r["stdout"], "x\na");
        assert_eq!(r["cmd"], "echo $((1+2)) | tr 3 x; printf 'a\\n\\n\\n'");
        assert_eq!(r["changed"], true);
        assert_eq!(r["rc"], 0);
        assert_eq!(r["msg"], "");
    }

    #[test]
    fn executable_runs_the_text() {
        let r = ok(json!({"cmd": "echo $0; [[ -n x ]] && echo bash", "executable": "/bin/bash"}));
        assert_eq!(r["stdout"], "/bin/bash\nbash");
        let r = ok(json!({"cmd": "echo", "executable": "/no/such/shell"}));
        assert_eq!(r["msg"], "Error executing command.");
        assert_eq!(r["rc"], 2);
    }

    #[test]
    fn hostile_text_in_chdir_creates_and_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a 'b' \"c\" $(d) `e`");
        std::fs::create_dir(&sub).expect("mkdir");
        let sub = sub.to_str().expect("utf-8");
        let r = ok(
            json!({"_raw_params": "pwd; cat > out; cat out", "chdir": sub, "stdin": "x'y\"$(z)"}),
        );
        assert_eq!(r["stdout"], format!("{sub}\nx'y\"$(z)"));
        let r = ok(json!({"_raw_params": "echo again", "chdir": sub, "creates": "out"}));
        assert_eq!(r["changed"], false);
        assert_eq!(r["msg"], "Did not run command since 'out' exists");
    }

    #[test]
    fn check_mode_and_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        let f = f.to_str().expect("utf-8");
        let out =
            run_module(&Shell, true, json!({"_raw_params": format!("touch '{f}'")})).expect("runs");
        assert!(out.skipped);
        assert!(!std::path::Path::new(f).exists());
        let r = ok(json!({"_raw_params": "echo e >&2; exit 4"}));
        assert_eq!(
            (r["rc"].clone(), r["failed"].clone()),
            (json!(4), json!(true))
        );
        assert_eq!(r["stderr"], "e");
        let err = run_module(
            &Shell,
            false,
            json!({"_raw_params": "x", "expand_argument_vars": false}),
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "Unsupported parameters for (shell) module: expand_argument_vars"
        );
    }

    #[test]
    fn argv_is_quoted_for_the_shell() {
        let r = ok(json!({"argv": ["printf", "%s", "a b; $(id)"]}));
        assert_eq!(r["stdout"], "a b; $(id)");
        assert_eq!(r["cmd"], json!(["printf", "%s", "a b; $(id)"]));
    }
}
