//! The `command` module, and the runner it shares with `shell`: one exec that changes
//! directory, checks creates/removes, finds the program and runs it.
//!
//! How a run maps onto Ansible's `command` module:
//! - The free-form text is split with Python's `shlex.split` rules on the controller; no
//!   shell ever interprets it. With `expand_argument_vars` (default), each word then gets
//!   Ansible's `os.path.expandvars` + `os.path.expanduser` treatment, done on the target by
//!   shell code (awk's `ENVIRON`, `getent`, never `eval`): `$NAME`/`${NAME}` become the value of
//!   an exported variable and stay as written when it is unset, a leading `~`/`~user`
//!   becomes that home directory. `chdir`, `creates` and `removes` are always expanded
//!   (Ansible's `type: path`), and `creates`/`removes` are globs, as with `glob.glob`.
//! - The program is looked up in `$PATH` first, so a missing one fails like Ansible's
//!   (`rc: 2`, `msg: "Error executing command."`; the `[Errno 2] ...` detail that Ansible
//!   prints from its exception goes in the `exception` key), then `exec`ed, so builtins
//!   are never used in place of the real program.
//! - `start` is the target's clock (`date`) just before the program starts, as Ansible
//!   reads it on the target; `delta` is measured by the controller around the exec (so it
//!   includes the connection's round trip) and `end` is `start + delta`.
//! - An empty command fails with `no command given` (older Ansible's wording; 2.19 says
//!   "Argument 'args' to run_command must be list or string", which helps nobody).
//!
//! Round trips: one exec, whether the command runs, is skipped or fails.

use std::time::Instant;

use serde::Deserialize;

use super::support::{
    guard_script, put_output, put_times, python_shlex_quote, python_shlex_split, read_preamble,
    set_expanded, strerror, yes, Guards, Preamble,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `command`.
pub struct Command;

#[derive(Debug, Deserialize)]
struct CommandArgs {
    _raw_params: Option<String>,
    #[serde(default)]
    _uses_shell: bool,
    cmd: Option<String>,
    argv: Option<Vec<String>>,
    chdir: Option<String>,
    executable: Option<String>,
    #[serde(default = "yes")]
    expand_argument_vars: bool,
    creates: Option<String>,
    removes: Option<String>,
    stdin: Option<String>,
    #[serde(default = "yes")]
    stdin_add_newline: bool,
    #[serde(default = "yes")]
    strip_empty_ends: bool,
}

impl Module for Command {
    fn name(&self) -> &'static str {
        "command"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<CommandArgs>()
    }
    fn free_form(&self) -> bool {
        true
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: CommandArgs = args::parse("command", args)?;
        let source = one_source(a._raw_params, a.cmd, a.argv)?;
        let mut warnings = Vec::new();
        let program = if a._uses_shell {
            Program::shell(source, a.executable)
        } else {
            if let Some(exe) = &a.executable {
                warnings.push(format!(
                    "As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' module. Not using '{exe}'."
                ));
            }
            let words = match source {
                Source::Text(text) => {
                    python_shlex_split(&text).map_err(super::support::arg_error)?
                }
                Source::Argv(argv) => argv,
            };
            Program::Argv {
                words,
                expand: a.expand_argument_vars,
            }
        };
        run(
            ctx,
            Request {
                program,
                chdir: a.chdir,
                creates: a.creates,
                removes: a.removes,
                stdin: stdin_bytes(a.stdin, a.stdin_add_newline),
                strip: a.strip_empty_ends,
                warnings,
            },
        )
    }
}

/// Where the command came from: free-form text / `cmd`, or an `argv` list.
pub(crate) enum Source {
    Text(String),
    Argv(Vec<String>),
}

/// Ansible's `required_one_of` and `mutually_exclusive` over `_raw_params`, `cmd`, `argv`.
pub(crate) fn one_source(
    raw: Option<String>,
    cmd: Option<String>,
    argv: Option<Vec<String>>,
) -> Result<Source, ModuleError> {
    let given = [raw.is_some(), cmd.is_some(), argv.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    if given > 1 {
        return Err(ModuleError::Args(
            "parameters are mutually exclusive: _raw_params|cmd|argv".into(),
        ));
    }
    match (raw.or(cmd), argv) {
        (Some(text), _) => Ok(Source::Text(text)),
        (None, Some(argv)) => Ok(Source::Argv(argv)),
        (None, None) => Err(ModuleError::Args(
            "one of the following is required: _raw_params, cmd, argv".into(),
        )),
    }
}

/// What to run.
pub(crate) enum Program {
    /// A program and its arguments, never seen by a shell.
    Argv { words: Vec<String>, expand: bool },
    /// Shell text for `/bin/sh -c` or `executable -c`. `shown` is the `cmd` result value.
    Shell {
        text: String,
        executable: Option<String>,
        shown: Value,
    },
}

impl Program {
    /// The `shell` module's program: text as it is, or an argv joined with quoting.
    pub(crate) fn shell(source: Source, executable: Option<String>) -> Self {
        let (text, shown) = match source {
            Source::Text(text) => (text.clone(), Value::String(text)),
            Source::Argv(argv) => (
                argv.iter()
                    .map(|w| python_shlex_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::from(argv),
            ),
        };
        Program::Shell {
            text,
            executable: executable.filter(|e| !e.is_empty()),
            shown,
        }
    }
    fn shown(&self) -> Value {
        match self {
            Program::Argv { words, .. } => Value::from(words.clone()),
            Program::Shell { shown, .. } => shown.clone(),
        }
    }
    fn is_empty(&self) -> bool {
        match self {
            Program::Argv { words, .. } => words.is_empty(),
            Program::Shell { text, .. } => text.trim().is_empty(),
        }
    }
}

/// Ansible sends stdin only when it is non-empty, with a newline added by default.
pub(crate) fn stdin_bytes(stdin: Option<String>, add_newline: bool) -> Option<Vec<u8>> {
    let mut data = stdin.filter(|s| !s.is_empty())?;
    if add_newline {
        data.push('\n');
    }
    Some(data.into_bytes())
}

/// One `command`/`shell` run.
pub(crate) struct Request {
    pub program: Program,
    pub chdir: Option<String>,
    pub creates: Option<String>,
    pub removes: Option<String>,
    pub stdin: Option<Vec<u8>>,
    pub strip: bool,
    pub warnings: Vec<String>,
}

/// The result keys Ansible always returns from `command`, before anything ran.
fn base_result(cmd: Value) -> Map {
    let mut r = Map::new();
    r.insert("cmd".into(), cmd);
    r.insert("rc".into(), Value::Null);
    r.insert("start".into(), Value::Null);
    r.insert("end".into(), Value::Null);
    r.insert("delta".into(), Value::Null);
    r
}

/// Run a `command`/`shell` request in one exec and shape the result as Ansible does.
pub(crate) fn run(ctx: &mut Ctx<'_>, req: Request) -> Result<Outcome, ModuleError> {
    let shown = req.program.shown();
    if req.program.is_empty() {
        let mut out = Outcome::failed("no command given");
        out.result = base_result(shown);
        out.result.insert("rc".into(), Value::from(256));
        return Ok(out);
    }
    let guards = Guards {
        chdir: req.chdir.as_deref(),
        creates: req.creates.as_deref(),
        removes: req.removes.as_deref(),
        expand_paths: true,
        glob: true,
    };
    let mut script = guard_script(&guards);
    if ctx.check {
        script = script.raw("play_st would-run\n");
    } else {
        match &req.program {
            Program::Argv { words, expand } => {
                script = script.raw("set --\n");
                for word in words {
                    script = set_expanded(script, word, *expand).raw("set -- \"$@\" \"$play_a\"\n");
                }
                script = script.raw(
                    "play_find \"$1\"\n\
                     if [ -n \"$play_err\" ]; then play_st exec-error \"$play_err\" \"$1\"; exit 0; fi\n\
                     play_st run \"$(play_now)\"\n\
                     exec \"$@\"\n",
                );
            }
            Program::Shell {
                text,
                executable: Some(exe),
                ..
            } => {
                script = script.set("play_x", exe).raw(
                    "\nplay_find \"$play_x\"\n\
                     if [ -n \"$play_err\" ]; then play_st exec-error \"$play_err\" \"$play_x\"; exit 0; fi\n\
                     play_st run \"$(play_now)\"\n\
                     exec \"$play_x\" -c",
                );
                script = script.arg(text);
            }
            Program::Shell {
                text,
                executable: None,
                ..
            } => {
                script = script
                    .raw("play_st run \"$(play_now)\"\nexec /bin/sh -c")
                    .arg(text);
            }
        }
    }
    let mut cmd = Cmd::script(script);
    if let Some(data) = &req.stdin {
        cmd = cmd.stdin(data.clone());
    }
    let started = Instant::now();
    let out = ctx.host.exec(&cmd)?;
    let elapsed = started.elapsed();

    let mut r = base_result(shown.clone());
    if !req.warnings.is_empty() {
        r.insert("warnings".into(), Value::from(req.warnings.clone()));
    }
    let Some((status, stdout)) = read_preamble(&out.stdout) else {
        // The shell failed before the preamble could report (it cannot start, or was killed).
        let mut o = Outcome::failed(format!(
            "The command could not be started: {}",
            out.stderr_str().trim()
        ));
        r.insert("rc".into(), Value::from(out.status));
        put_output(&mut r, &out.stdout, &out.stderr, req.strip);
        o.result = r;
        return Ok(o);
    };
    let shoulda = if ctx.check { "Would" } else { "Did" };
    let mut outcome = match status {
        Preamble::ChdirFailed(_) => {
            put_output(&mut r, b"", b"", false);
            Outcome::failed("Unable to change directory before execution.")
        }
        Preamble::Creates(pattern) => {
            r.insert("rc".into(), Value::from(0));
            let stdout = format!("skipped, since {pattern} exists");
            put_output(&mut r, stdout.as_bytes(), b"", req.strip);
            Outcome::ok().with_msg(format!(
                "{shoulda} not run command since '{pattern}' exists"
            ))
        }
        Preamble::Removes(pattern) => {
            r.insert("rc".into(), Value::from(0));
            let stdout = format!("skipped, since {pattern} does not exist");
            put_output(&mut r, stdout.as_bytes(), b"", req.strip);
            Outcome::ok().with_msg(format!(
                "{shoulda} not run command since '{pattern}' does not exist"
            ))
        }
        Preamble::WouldRun => {
            r.insert("rc".into(), Value::from(0));
            put_output(&mut r, b"", b"", false);
            let mut o =
                Outcome::changed(true).with_msg("Command would have run if not in check mode");
            if req.creates.is_none() && req.removes.is_none() {
                // skipped and changed are mutually exclusive in Ansible.
                o.changed = false;
                o.skipped = true;
            }
            o
        }
        Preamble::ExecError(errno, program) => {
            let mut r = Map::new();
            r.insert("cmd".into(), Value::String(shown_string(&shown)));
            r.insert("rc".into(), Value::from(errno));
            put_output(&mut r, b"", b"", false);
            r.insert(
                "exception".into(),
                Value::String(format!(
                    "[Errno {errno}] {}: {}",
                    strerror(errno),
                    python_bytes_repr(&program)
                )),
            );
            let mut o = Outcome::failed("Error executing command.");
            o.result = r;
            return Ok(o);
        }
        // Only the script module's preamble asks for this record.
        Preamble::Ready(_) => {
            return Err(ModuleError::Failed(
                "the command preamble reported an unexpected status".into(),
            ))
        }
        Preamble::Ran { started } => {
            r.insert("rc".into(), Value::from(out.status));
            put_times(&mut r, &started, elapsed);
            put_output(&mut r, stdout, &out.stderr, req.strip);
            if out.status == 0 {
                Outcome::changed(true).with_msg("")
            } else {
                let mut o = Outcome::failed("non-zero return code");
                o.changed = true;
                o
            }
        }
    };
    outcome.result = r;
    Ok(outcome)
}

/// The `cmd` value as Ansible's `_clean_args` renders it in an execution error: one string.
fn shown_string(shown: &Value) -> String {
    match shown {
        Value::Array(words) => words
            .iter()
            .map(|w| python_shlex_quote(w.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Python's `repr()` of the UTF-8 bytes of `text`: `b'foo'`, `b"it's"`, `b'\xc3\xa9'`.
fn python_bytes_repr(text: &str) -> String {
    let bytes = text.as_bytes();
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ if b == quote as u8 => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote);
    s
}

#[cfg(test)]
mod tests {
    use super::super::support::{run_module, LocalTime};
    use super::*;
    use serde_json::json;

    fn ok(args: Value) -> Map {
        run_module(&Command, false, args)
            .expect("module runs")
            .to_result()
    }

    #[test]
    fn runs_without_a_shell_and_reports_like_ansible() {
        let r = ok(json!({"_raw_params": "printf '%s|%s\\n' 'a b' \"$(id)\""}));
        assert_eq!(r["stdout"], "a b|$(id)");
        assert_eq!(r["stdout_lines"], json!(["a b|$(id)"]));
        assert_eq!(r["cmd"], json!(["printf", "%s|%s\\n", "a b", "$(id)"]));
        assert_eq!(r["rc"], 0);
        assert_eq!(r["changed"], true);
        assert_eq!(r["msg"], "");
        assert_eq!(r["stderr"], "");
        let delta = r["delta"].as_str().expect("delta");
        assert!(delta.starts_with("0:00:0"), "{delta}");
        let start = r["start"].as_str().expect("start");
        // Microseconds are there unless the target's `date` has no %N (busybox).
        assert!(
            LocalTime::parse(&start.replace('.', " ")).is_some() && [19, 26].contains(&start.len()),
            "{start}"
        );
        assert!(r["end"].as_str().expect("end") >= start);
    }

    #[test]
    fn builtins_are_not_used_for_programs() {
        // dash's builtin echo would interpret the backslash; /bin/echo does not.
        let r = ok(json!({"argv": ["echo", "a\\tb"]}));
        assert_eq!(r["stdout"], "a\\tb");
    }

    #[test]
    fn hostile_arguments_arrive_intact() {
        let hostile = "it's \"quoted\" $(touch /tmp/pwned) `id` ; | & \n newline";
        let r = ok(json!({"argv": ["printf", "%s", hostile], "expand_argument_vars": false}));
        assert_eq!(r["stdout"], hostile.trim_end());
        let r = ok(json!({"argv": ["printf", "%s", hostile]}));
        assert_eq!(r["stdout"], hostile, "no known variable: kept as written");
    }

    #[test]
    fn expands_variables_and_tilde_like_python() {
        let home = std::env::var("HOME").expect("HOME is set");
        let r = ok(
            json!({"argv": ["printf", "%s|", "$HOME", "${HOME}x", "$PLAY_NOT_SET_X", "~", "~/a", "${A B}", "$1"]}),
        );
        assert_eq!(
            r["stdout"],
            format!("{home}|{home}x|$PLAY_NOT_SET_X|{home}|{home}/a|${{A B}}|$1|")
        );
        let r = ok(json!({"argv": ["printf", "%s", "$HOME"], "expand_argument_vars": false}));
        assert_eq!(r["stdout"], "$HOME");
        let r = ok(json!({"argv": ["printf", "%s", "~root/x"]}));
        assert_eq!(r["stdout"], "/root/x");
        let r = ok(json!({"argv": ["printf", "%s", "~no_such_user_play/x"]}));
        assert_eq!(r["stdout"], "~no_such_user_play/x");
    }

    #[test]
    fn strip_empty_ends_and_lines() {
        let r = ok(json!({"argv": ["printf", "a\\r\\n\\nb\\n\\n\\n"]}));
        assert_eq!(r["stdout"], "a\r\n\nb");
        assert_eq!(r["stdout_lines"], json!(["a", "", "b"]));
        let r = ok(json!({"argv": ["printf", "a\\n\\n"], "strip_empty_ends": false}));
        assert_eq!(r["stdout"], "a\n\n");
        assert_eq!(r["stdout_lines"], json!(["a", ""]));
    }

    #[test]
    fn non_zero_rc_fails() {
        let r = ok(json!({"argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]}));
        assert_eq!(r["rc"], 3);
        assert_eq!(r["failed"], true);
        assert_eq!(r["changed"], true);
        assert_eq!(r["msg"], "non-zero return code");
        assert_eq!(r["stdout"], "out");
        assert_eq!(r["stderr_lines"], json!(["err"]));
    }

    #[test]
    fn missing_program_fails_like_ansible() {
        let r = ok(json!({"_raw_params": "no_such_program_play a 'b c'"}));
        assert_eq!(r["failed"], true);
        assert_eq!(r["rc"], 2);
        assert_eq!(r["msg"], "Error executing command.");
        assert_eq!(r["cmd"], "no_such_program_play a 'b c'");
        assert_eq!(
            r["exception"],
            "[Errno 2] No such file or directory: b'no_such_program_play'"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ok(json!({"argv": [dir.path()]}));
        assert_eq!(r["rc"], 13);
        assert!(r["exception"]
            .as_str()
            .expect("exception")
            .starts_with("[Errno 13] Permission denied: b'/"));
    }

    #[test]
    fn creates_and_removes_skip_with_ansibles_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let marker = format!("{d}/it's here $(x)");
        std::fs::write(&marker, "").expect("write");
        let pattern = format!("{d}/it's*");
        let r =
            ok(json!({"_raw_params": "touch should_not_exist", "chdir": d, "creates": pattern}));
        assert_eq!(r["changed"], false);
        assert_eq!(r["rc"], 0);
        assert_eq!(
            r["msg"],
            format!("Did not run command since '{pattern}' exists")
        );
        assert_eq!(r["stdout"], format!("skipped, since {pattern} exists"));
        assert_eq!(r["start"], Value::Null);
        assert!(!dir.path().join("should_not_exist").exists());

        let missing = format!("{d}/nothing*");
        let r = ok(json!({"_raw_params": "touch x", "chdir": d, "removes": missing}));
        assert_eq!(
            r["msg"],
            format!("Did not run command since '{missing}' does not exist")
        );
        assert_eq!(
            r["stdout"],
            format!("skipped, since {missing} does not exist")
        );

        // Relative patterns are relative to chdir, and the command runs when they match.
        let r = ok(json!({"_raw_params": "touch made", "chdir": d, "removes": "it*"}));
        assert_eq!(r["changed"], true);
        assert!(dir.path().join("made").exists());
        // Second run with creates: idempotent.
        let r = ok(json!({"_raw_params": "touch made", "chdir": d, "creates": "made"}));
        assert_eq!(r["changed"], false);
    }

    #[test]
    fn check_mode_runs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let out = run_module(
            &Command,
            true,
            json!({"_raw_params": "touch x", "chdir": d}),
        )
        .expect("runs");
        assert!(out.skipped && !out.changed);
        assert_eq!(
            out.msg.as_deref(),
            Some("Command would have run if not in check mode")
        );
        assert!(!dir.path().join("x").exists());
        let out = run_module(
            &Command,
            true,
            json!({"_raw_params": "touch x", "chdir": d, "creates": "x"}),
        )
        .expect("runs");
        assert!(out.changed && !out.skipped);
        assert!(!dir.path().join("x").exists());
        std::fs::write(dir.path().join("x"), "").expect("write");
        let r = run_module(
            &Command,
            true,
            json!({"_raw_params": "touch x", "chdir": d, "creates": "x"}),
        )
        .expect("runs")
        .to_result();
        assert_eq!(r["changed"], false);
        assert_eq!(r["msg"], "Would not run command since 'x' exists");
    }

    #[test]
    fn chdir_failure_and_stdin() {
        let r = ok(json!({"_raw_params": "pwd", "chdir": "/no/such/dir play"}));
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "Unable to change directory before execution.");
        assert_eq!(r["rc"], Value::Null);
        let r = ok(json!({"_raw_params": "od -c", "stdin": "x"}));
        assert!(r["stdout"].as_str().expect("stdout").contains("x  \\n"));
        let r = ok(json!({"_raw_params": "cat", "stdin": "a'b\n$(c)", "stdin_add_newline": false}));
        assert_eq!(r["stdout"], "a'b\n$(c)");
    }

    #[test]
    fn argument_errors() {
        let err = run_module(&Command, false, json!({})).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "one of the following is required: _raw_params, cmd, argv"
        );
        let err =
            run_module(&Command, false, json!({"cmd": "a", "argv": ["a"]})).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "parameters are mutually exclusive: _raw_params|cmd|argv"
        );
        let err = run_module(&Command, false, json!({"cmd": "echo 'a"})).expect_err("refused");
        assert_eq!(err.to_string(), "No closing quotation");
        let r = ok(json!({"_raw_params": "  "}));
        assert_eq!(r["msg"], "no command given");
        assert_eq!(r["rc"], 256);
        let r = ok(json!({"argv": []}));
        assert_eq!(r["msg"], "no command given");
    }

    #[test]
    fn executable_is_ignored_with_a_warning() {
        let r = ok(json!({"_raw_params": "echo hi", "executable": "/bin/bash"}));
        assert_eq!(r["stdout"], "hi");
        assert_eq!(
            r["warnings"],
            json!(["As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' module. Not using '/bin/bash'."])
        );
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(python_bytes_repr("foo"), "b'foo'");
        assert_eq!(python_bytes_repr("it's"), "b\"it's\"");
        assert_eq!(python_bytes_repr("a'\"b"), "b'a\\'\"b'");
        assert_eq!(python_bytes_repr("é\n"), "b'\\xc3\\xa9\\n'");
    }
}
