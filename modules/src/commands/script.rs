//! The `script` module: a controller-side script copied to a private temp dir on the
//! target, run there, and removed again.
//!
//! The engine reads the script and passes `_script_b64` (its bytes, base64), `_script_name`
//! (its file name) and `_raw_params` (the words after the script path). Round trips: one
//! exec when creates/removes skip; otherwise an exec (checks + `mktemp -d`), the transfer
//! (`Host::put`, mode 0700) and an exec that runs it with a `trap` removing the temp dir.
//!
//! Differences from Ansible, on purpose:
//! - The arguments are split with Python's `shlex` and each passed as one literal word.
//!   Ansible pastes the text after the script path into a shell command line, so `$VAR`,
//!   globs, `;` and `$(...)` in it are interpreted by the target's shell; here they arrive
//!   as written (no injection through templated arguments).
//! - `executable` is split with `shlex` too (`python3 -u` works as in Ansible).
//! - The temp dir comes from `mktemp -d` (`$TMPDIR` or `/tmp`), not `~/.ansible/tmp`.

use base64::Engine as _;
use serde::Deserialize;

use super::support::{
    guard_script, put_output, python_shlex_split, read_preamble, Guards, Preamble,
};
use crate::{args, Cmd, Ctx, FileAttrs, Map, Module, ModuleError, Outcome, Script};

/// `script`.
pub struct ScriptModule;

#[derive(Debug, Deserialize)]
struct ScriptArgs {
    /// The script's arguments (the free-form text after the script path).
    _raw_params: Option<String>,
    _script_b64: String,
    _script_name: String,
    creates: Option<String>,
    removes: Option<String>,
    chdir: Option<String>,
    executable: Option<String>,
    /// Vault decryption of the source is the engine's business; accepted here.
    #[allow(dead_code)]
    decrypt: Option<bool>,
}

impl Module for ScriptModule {
    fn name(&self) -> &'static str {
        "script"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<ScriptArgs>()
    }
    fn free_form(&self) -> bool {
        true
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: ScriptArgs = args::parse("script", args)?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(a._script_b64.trim())
            .map_err(|e| ModuleError::Args(format!("_script_b64 is not valid base64: {e}")))?;
        let words = python_shlex_split(a._raw_params.as_deref().unwrap_or(""))
            .map_err(ModuleError::Args)?;
        let exe_words =
            python_shlex_split(a.executable.as_deref().unwrap_or("")).map_err(ModuleError::Args)?;
        let chdir = a.chdir.filter(|d| !d.is_empty());
        let bad_chdir = chdir.as_deref().filter(|d| !d.starts_with('/'));
        let has_guard = a.creates.as_deref().is_some_and(|c| !c.is_empty())
            || a.removes.as_deref().is_some_and(|r| !r.is_empty());

        // Nothing to ask the target: fail or skip right away.
        if !has_guard {
            if let Some(dir) = bad_chdir {
                return Ok(chdir_not_absolute(dir));
            }
            if ctx.check {
                return Ok(check_mode_skip());
            }
        }

        // First exec: creates/removes (plain `test -e`, as Ansible's action), then a temp dir.
        let guards = Guards {
            chdir: None,
            creates: a.creates.as_deref(),
            removes: a.removes.as_deref(),
            expand_paths: false,
            glob: false,
        };
        let mut first = guard_script(&guards);
        first = if ctx.check || bad_chdir.is_some() {
            first.raw("play_st would-run\n")
        } else {
            first.raw(
                "play_t=$(umask 077; mktemp -d) || exit 1\n\
                 play_st ready \"$play_t\"\n",
            )
        };
        let out = ctx.host.exec(&Cmd::script(first))?;
        let tmpdir = match read_preamble(&out.stdout).map(|p| p.0) {
            Some(Preamble::Creates(path)) => {
                return Ok(skip(format!("{path} exists, matching creates option")))
            }
            Some(Preamble::Removes(path)) => {
                return Ok(skip(format!(
                    "{path} does not exist, matching removes option"
                )))
            }
            Some(Preamble::Ready(dir)) if !dir.is_empty() => dir,
            Some(Preamble::WouldRun) => {
                if let Some(dir) = bad_chdir {
                    return Ok(chdir_not_absolute(dir));
                }
                // Check mode with creates/removes that do not skip: it would run.
                return Ok(Outcome::changed(true));
            }
            _ => {
                return Ok(Outcome::failed(format!(
                    "could not create a temporary directory on the target: {}",
                    out.stderr_str().trim()
                )))
            }
        };

        let name = script_file_name(&a._script_name);
        let path = format!("{tmpdir}/{name}");
        let attrs = FileAttrs {
            mode: Some(0o700),
            ..FileAttrs::default()
        };
        if let Err(e) = ctx.host.put(&body, &path, &attrs) {
            // Best effort: do not leave the temp dir behind; the transfer error is what matters.
            let _ = ctx.host.exec(&Cmd::argv(&["rm", "-rf", "--", &tmpdir]));
            return Err(e.into());
        }

        let mut run = Script::new().set("play_d", &tmpdir).raw(
            "\ntrap 'rm -rf \"$play_d\"' EXIT\n\
                 trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n",
        );
        if let Some(dir) = &chdir {
            run = run.raw("cd").arg(dir).raw("|| exit $?\n");
        }
        run = run
            .cmd(&exe_words)
            .arg(&path)
            .cmd(&words)
            .raw("\nexit $?\n");
        let out = ctx.host.exec(&Cmd::script(run))?;
        let mut outcome = if out.status == 0 {
            Outcome::changed(true)
        } else {
            let mut o = Outcome::failed("non-zero return code");
            o.changed = true;
            o
        };
        outcome
            .result
            .insert("rc".into(), serde_json::Value::from(out.status));
        put_output(&mut outcome.result, &out.stdout, &out.stderr, false);
        Ok(outcome)
    }
}

/// The script's own file name, never a path (the engine should already send a basename).
fn script_file_name(name: &str) -> String {
    match name.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_string(),
        _ => "script".to_string(),
    }
}

fn skip(msg: String) -> Outcome {
    Outcome {
        skipped: true,
        msg: Some(msg),
        ..Outcome::default()
    }
}

fn check_mode_skip() -> Outcome {
    skip("Check mode is not supported for this task.".into())
}

fn chdir_not_absolute(dir: &str) -> Outcome {
    Outcome::failed(format!(
        "chdir {dir} must be an absolute path for a Unix-aware remote node"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::support::run_module;
    use super::*;
    use serde_json::{json, Value};

    /// A script that prints its arguments and working directory and records its own path
    /// in `record`, so a test can check that the temp dir is gone afterwards.
    fn script_text(record: &std::path::Path) -> String {
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\necho\npwd\necho err >&2\nprintf '%s\\n' \"$0\" > {}\n",
            crate::quote(record.to_str().unwrap_or_default())
        )
    }

    fn args(script: &str, extra: Value) -> Value {
        let mut base = json!({
            "_script_b64": base64::engine::general_purpose::STANDARD.encode(script),
            "_script_name": "my script.sh",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    }

    fn run_recording(extra: Value, check: bool) -> (Map, Option<String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("where it's");
        let r = run_module(&ScriptModule, check, args(&script_text(&record), extra))
            .expect("module runs")
            .to_result();
        let ran_as = std::fs::read_to_string(&record)
            .ok()
            .map(|s| s.trim_end().to_string());
        (r, ran_as, dir)
    }

    #[test]
    fn uploads_runs_and_cleans_up() {
        let (r, ran_as, _dir) = run_recording(
            json!({"_raw_params": "a 'b c' \"it's\" '$(id)' $HOME", "chdir": "/"}),
            false,
        );
        assert_eq!(r["changed"], true);
        assert_eq!(r["rc"], 0);
        assert_eq!(r["stdout"], "[a][b c][it's][$(id)][$HOME]\n/\n");
        assert_eq!(
            r["stdout_lines"],
            json!(["[a][b c][it's][$(id)][$HOME]", "/"])
        );
        assert_eq!(r["stderr"], "err\n");
        let ran_as = ran_as.expect("script ran");
        assert!(ran_as.ends_with("/my script.sh"), "{ran_as}");
        let tmpdir = std::path::Path::new(&ran_as)
            .parent()
            .expect("temp dir")
            .to_path_buf();
        assert!(!tmpdir.exists(), "temp dir {tmpdir:?} was removed");
    }

    #[test]
    fn executable_and_failure() {
        let (r, _, _dir) = run_recording(json!({"executable": "sh -e", "_raw_params": "x"}), false);
        assert_eq!(r["stdout_lines"][0], "[x]");
        assert_eq!(r["rc"], 0);
        let err = run_module(&ScriptModule, false, args("", json!({"executable": "'sh"})))
            .expect_err("refused");
        assert_eq!(err.to_string(), "No closing quotation");
        let r = run_module(
            &ScriptModule,
            false,
            json!({
                "_script_b64": base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\nexit 5\n"),
                "_script_name": "fail.sh",
            }),
        )
        .expect("runs")
        .to_result();
        assert_eq!(r["rc"], 5);
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "non-zero return code");
    }

    #[test]
    fn creates_removes_and_check_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let existing = dir.path().join("a 'b' $(c)");
        std::fs::write(&existing, "").expect("write");
        let existing = existing.to_str().expect("utf-8").to_string();
        let r = run_module(&ScriptModule, false, args("", json!({"creates": existing})))
            .expect("runs")
            .to_result();
        assert_eq!(r["skipped"], true);
        assert_eq!(r["changed"], false);
        assert_eq!(
            r["msg"],
            format!("{existing} exists, matching creates option")
        );
        let r = run_module(
            &ScriptModule,
            false,
            args("", json!({"removes": "/no/such play"})),
        )
        .expect("runs")
        .to_result();
        assert_eq!(
            r["msg"],
            "/no/such play does not exist, matching removes option"
        );

        // Check mode: skipped without creates/removes, changed with them; nothing runs.
        let (r, ran_as, _d) = run_recording(json!({}), true);
        assert_eq!(r["skipped"], true);
        assert_eq!(r["msg"], "Check mode is not supported for this task.");
        assert!(ran_as.is_none());
        let (r, ran_as, _d) = run_recording(json!({"creates": "/no/such/file"}), true);
        assert_eq!(r["changed"], true);
        assert!(r.get("skipped").is_none());
        assert!(ran_as.is_none());
    }

    #[test]
    fn relative_chdir_is_refused() {
        let r = run_module(&ScriptModule, false, args("", json!({"chdir": "tmp"})))
            .expect("runs")
            .to_result();
        assert_eq!(r["failed"], true);
        assert_eq!(
            r["msg"],
            "chdir tmp must be an absolute path for a Unix-aware remote node"
        );
    }

    #[test]
    fn file_names_are_basenames() {
        assert_eq!(script_file_name("a/b.sh"), "b.sh");
        assert_eq!(script_file_name(".."), "script");
        assert_eq!(script_file_name(""), "script");
    }
}
