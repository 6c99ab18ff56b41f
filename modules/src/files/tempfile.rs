//! The `tempfile` module: a fresh temporary file or directory (`mktemp`) on the target.
//!
//! Ansible does not support check mode here (the task is skipped); we report `changed`
//! without creating anything and without a `path`, because no path exists to report.

use serde::Deserialize;

use super::common::{basename, last_reason, path_info, py_repr, Records, PRELUDE};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script};

/// `tempfile`.
pub struct TempFile;

#[derive(Debug, Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TempState {
    #[default]
    File,
    Directory,
}

fn default_prefix() -> String {
    "ansible.".into()
}

#[derive(Debug, Deserialize)]
struct TempFileArgs {
    #[serde(default)]
    state: TempState,
    path: Option<String>,
    #[serde(default = "default_prefix")]
    prefix: String,
    #[serde(default)]
    suffix: String,
}

impl Module for TempFile {
    fn name(&self) -> &'static str {
        "tempfile"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<TempFileArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: TempFileArgs = args::parse("tempfile", args)?;
        for (what, value) in [("prefix", &a.prefix), ("suffix", &a.suffix)] {
            if !value.is_empty() && basename(value) != value {
                return Ok(Outcome::failed(format!(
                    "{what} must be a valid file name component, got {}",
                    py_repr(value)
                )));
            }
        }
        if ctx.check {
            return Ok(Outcome::changed(true));
        }
        let dir = a.path.as_deref().filter(|p| !p.is_empty());
        let mut script = Script::new().raw(PRELUDE);
        script = match dir {
            Some(d) => script.set("d", d).raw("\n__tilde \"$d\"; d=$__o"),
            // Python's tempfile.gettempdir(): $TMPDIR first, then /tmp.
            None => script.raw("d=${TMPDIR:-/tmp}"),
        };
        script = script
            .raw("\n")
            .set("pre", &a.prefix)
            .set("suf", &a.suffix)
            .raw("\n");
        // GNU mktemp wants the suffix apart (--suffix). Busybox has no --suffix: there the
        // name is made here and created exclusively (noclobber `>` / `mkdir`), mode 0600/0700.
        script = script.set("dflag", if a.state == TempState::Directory { "-d" } else { "" }).raw(
            "\n__mkt() {\n\
               __i=0; while [ $__i -lt 50 ]; do __i=$((__i+1))\n\
                 __r=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \\n'); t=$d/$pre$__r$suf\n\
                 if [ -n \"$dflag\" ]; then (umask 077; mkdir -- \"$t\") && return 0\n\
                 else (umask 077; set -C; : > \"$t\") && return 0; fi\n\
                 [ -d \"$d\" ] || return 1\n\
               done; return 1; }\n\
             if [ -z \"$suf\" ]; then t=$(mktemp $dflag \"$d/${pre}XXXXXXXX\") || exit 1\n\
             elif ! t=$(mktemp $dflag --suffix=\"$suf\" \"$d/${pre}XXXXXXXX\" 2>/dev/null); then __mkt || exit 1; fi\n",
        );
        script = script.raw("__kv path \"$t\"; __kst st \"$t\"");
        let out = ctx.host.exec(&Cmd::script(script))?;
        let records = Records::parse(&out.stdout);
        let path = match records.get("path") {
            Some(p) if out.success() => p.to_string(),
            _ => {
                let reason = last_reason(&out.stderr_str()).to_string();
                let template = format!(
                    "{}/{}XXXXXXXX{}",
                    dir.unwrap_or("$TMPDIR"),
                    a.prefix,
                    a.suffix
                );
                // Python's OSError text, as Ansible shows it.
                let msg = match errno_of(&reason) {
                    Some(n) => format!("[Errno {n}] {reason}: {}", py_repr(&template)),
                    None => format!("{reason}: {}", py_repr(&template)),
                };
                return Ok(Outcome::failed(msg));
            }
        };
        let mut outcome = Outcome::changed(true).with("path", path);
        if let Some(st) = records.stat("st").present() {
            outcome.result.extend(path_info(st));
        }
        Ok(outcome)
    }
}

/// Errno numbers (Linux) for the reasons mktemp can give.
fn errno_of(reason: &str) -> Option<u32> {
    Some(match reason {
        "No such file or directory" => 2,
        "Permission denied" => 13,
        "Not a directory" => 20,
        "No space left on device" => 28,
        "Read-only file system" => 30,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit;
    use crate::Value;
    use serde_json::json;

    fn run(args: Value, check: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&TempFile, args, check, false)
    }

    fn entries(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).expect("ls").count()
    }

    #[test]
    fn creates_a_private_file_every_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("x 'y' $(z)");
        std::fs::create_dir(&d).expect("mkdir");
        let ds = d.to_str().expect("utf-8");
        let args = json!({"path": ds, "prefix": "p 'q' ", "suffix": ".$(s)"});
        let first = run(args.clone(), false).expect("runs");
        let second = run(args, false).expect("runs");
        assert!(first.changed && second.changed, "tempfile always changes");
        let path = first.result["path"].as_str().expect("path").to_string();
        assert_ne!(Some(path.as_str()), second.result["path"].as_str());
        assert!(path.starts_with(&format!("{ds}/p 'q' ")) && path.ends_with(".$(s)"));
        let meta = std::fs::metadata(&path).expect("exists");
        assert!(meta.is_file());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        assert_eq!(first.result["mode"], json!("0600"));
        assert_eq!(first.result["state"], json!("file"));
        assert_eq!(entries(&d), 2);
    }

    #[test]
    fn creates_directories_with_the_default_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ds = dir.path().to_str().expect("utf-8");
        let out = run(json!({"path": ds, "state": "directory"}), false).expect("runs");
        let path = out.result["path"].as_str().expect("path");
        assert!(path.starts_with(&format!("{ds}/ansible.")));
        assert!(std::path::Path::new(path).is_dir());
        assert_eq!(out.result["state"], json!("directory"));
        assert_eq!(out.result["mode"], json!("0700"));
    }

    #[test]
    fn check_mode_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ds = dir.path().to_str().expect("utf-8");
        let out = run(json!({"path": ds}), true).expect("runs");
        assert!(out.changed);
        assert!(!out.result.contains_key("path"));
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn failures_use_ansibles_messages() {
        let out = run(json!({"prefix": "a/b"}), false).expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("prefix must be a valid file name component, got 'a/b'")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = format!("{}/nope", dir.path().to_str().expect("utf-8"));
        let out = run(json!({"path": missing}), false).expect("runs");
        assert!(out.failed);
        assert_eq!(
            out.msg,
            Some(format!(
                "[Errno 2] No such file or directory: '{missing}/ansible.XXXXXXXX'"
            ))
        );
        let err = run(json!({"state": "link"}), false).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "value of state must be one of: file, directory, got: link"
        );
    }
}
