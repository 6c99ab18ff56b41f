//! The `sysctl` module (`ansible.posix.sysctl`): a kernel parameter's line in a sysctl file,
//! optionally its live value (`sysctl -w`) and a reload of the file (`sysctl -p`), decided as
//! Ansible's `sysctl.py` decides.
//!
//! One exec reads the live value (`sysctl -e -n KEY`) and the file; the new file is computed
//! on the controller exactly as Ansible rewrites it (every line stripped, later duplicates of
//! a key dropped, `key=value` without spaces), and when something changes one more exec sets
//! the live value, moves the new file (uploaded beside it) into place keeping its mode, and
//! reloads, stopping at the first step that fails.
//!
//! Deviations, on purpose:
//! - `--diff` shows the file's change (Ansible's module returns no diff).
//! - The file attribute arguments (`mode`, `owner`, ...) of recent ansible.posix releases are
//!   not supported: the file keeps its mode and owner (a new file gets 0644 minus the umask).
//! - Only Linux's `sysctl` (procps) is driven; the BSD variants are not.

use serde::Deserialize;

use crate::files::common::{Records, PRELUDE};
use crate::services::systemd::CAPTURE;
use crate::Script;
use crate::{args, cmd, diff, tools, Cmd, Ctx, HostError, Map, Module, ModuleError, Outcome};

/// `sysctl`.
pub struct Sysctl;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Deserialize)]
struct SysctlArgs {
    #[serde(alias = "key")]
    name: Option<String>,
    #[serde(alias = "val")]
    value: Option<String>,
    #[serde(default)]
    state: State,
    #[serde(default = "yes")]
    reload: bool,
    #[serde(default)]
    sysctl_set: bool,
    #[serde(default)]
    ignoreerrors: bool,
    #[serde(default = "default_file")]
    sysctl_file: String,
    /// Accepted for compatibility: the file is always replaced atomically.
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
}

fn yes() -> bool {
    true
}

fn default_file() -> String {
    "/etc/sysctl.conf".into()
}

/// Ansible's `_parse_value`: truth words become `1`/`0`, anything else is stripped.
fn parse_value(value: &str) -> String {
    match value.to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => "1".into(),
        "n" | "no" | "off" | "0" | "false" | "f" => "0".into(),
        _ => value.trim().to_string(),
    }
}

/// Ansible's `_values_is_equal`: the same whitespace-separated words in the same order.
fn values_equal(a: Option<&str>, b: &str) -> bool {
    match a {
        None => false,
        Some(a) => a.split_whitespace().eq(b.split_whitespace()),
    }
}

/// The file's lines as Ansible reads them (stripped) and the last value of each key.
fn read_lines(text: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut lines = Vec::new();
    let mut values: Vec<(String, String)> = Vec::new();
    for raw in text.split_inclusive('\n') {
        let line = raw.trim().to_string();
        if !is_setting(&line) {
            lines.push(line);
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            match values.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => values.push((k, v)),
            }
        }
        lines.push(line);
    }
    (lines, values)
}

fn is_setting(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || t.starts_with(';') || !t.contains('='))
}

/// Ansible's `fix_lines` and `write_sysctl`: the file's new content.
fn fixed_content(lines: &[String], name: &str, state: State, value: &str) -> String {
    let mut checked: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in lines {
        if !is_setting(line) {
            out.push_str(line.trim());
            out.push('\n');
            continue;
        }
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if checked.iter().any(|c| c == k) {
            continue;
        }
        checked.push(k.to_string());
        if k == name {
            if state == State::Present {
                out.push_str(&format!("{k}={value}\n"));
            }
        } else {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    if state == State::Present && !checked.iter().any(|c| c == name) {
        out.push_str(&format!("{name}={value}\n"));
    }
    out
}

/// What to do, from the probe: Ansible's `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    changed: bool,
    set_proc: bool,
    write_file: bool,
    reload: bool,
    content: String,
}

fn plan(
    name: &str,
    value: &str,
    state: State,
    reload: bool,
    sysctl_set: bool,
    proc_value: Option<&str>,
    file_text: &str,
) -> Plan {
    let (lines, values) = read_lines(file_text);
    let file_value = values
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let mut changed = false;
    let mut write_file = false;
    let mut set_proc = false;
    match (file_value, state) {
        (None, State::Present) => {
            changed = true;
            write_file = true;
        }
        (None, State::Absent) => {}
        // Ansible tests the value's truth: an empty `key=` counts as missing here.
        (Some(v), State::Absent) if !v.is_empty() => {
            changed = true;
            write_file = true;
        }
        (Some(v), _) if v != value => {
            changed = true;
            write_file = true;
        }
        _ => {
            if reload && !values_equal(proc_value, value) {
                changed = true;
            }
        }
    }
    if sysctl_set && state == State::Present {
        match proc_value {
            None => changed = true,
            Some(p) if !values_equal(Some(p), value) => {
                changed = true;
                set_proc = true;
            }
            Some(_) => {}
        }
    }
    Plan {
        changed,
        set_proc,
        write_file,
        reload: changed && reload,
        content: fixed_content(&lines, name, state, value),
    }
}

/// `sysctl` prints these on stderr even when it exits 0 (Ansible's `_stderr_failed`).
const STDERR_FAILED: &str =
    r#"^sysctl: setting key "[^"]+": (Invalid argument|Read-only file system)$"#;

fn stderr_failed(err: &str) -> bool {
    regex::Regex::new(&format!("(?m){STDERR_FAILED}")).is_ok_and(|re| re.is_match(err))
}

/// `__write`: the uploaded `$t` over `$f`, with the mode, owner and group of the file it
/// replaces (a new file: 0666 minus the umask), as Ansible's `atomic_move` leaves it.
const WRITE: &str = r#"__write() {
  if [ -e "$f" ]; then
    chmod "$(stat -c %a -- "$f")" "$t" && { chown "$(stat -c %u:%g -- "$f")" "$t" 2>/dev/null || :; }
  else chmod "$(printf %o $((0666 & ~$(umask))))" "$t"; fi && mv -f -- "$t" "$f"
}
"#;

fn temp_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(".play-tmp-sysctl-{}-{nanos}", std::process::id())
}

impl Module for Sysctl {
    fn name(&self) -> &'static str {
        "sysctl"
    }
    fn collections(&self) -> &'static [&'static str] {
        &["ansible.posix"]
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<SysctlArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: SysctlArgs = args::parse("sysctl", raw)?;
        let Some(name) = a.name else {
            return Err(ModuleError::Args("missing required arguments: name".into()));
        };
        if a.state == State::Present && a.value.is_none() {
            return Err(ModuleError::Args(
                "state is present but all of the following are missing: value".into(),
            ));
        }
        if name.is_empty() {
            return Err(ModuleError::Args("name cannot be blank".into()));
        }
        if a.state == State::Present && a.value.as_deref() == Some("") {
            return Err(ModuleError::Args("value cannot be blank".into()));
        }
        let name = name.trim().to_string();
        let value = a.value.as_deref().map(parse_value).unwrap_or_default();
        let file = a.sysctl_file.clone();
        let e_flag = a.ignoreerrors;

        let probe = Script::new()
            .raw(PRELUDE)
            .raw(CAPTURE)
            .need("sysctl")
            .raw("LANG=C; LC_MESSAGES=C; export LANG LC_MESSAGES\n")
            .raw("__cap proc sysctl -e -n")
            .arg(&name)
            .raw("\n")
            .set("f", &file)
            .raw(
                "\nif [ -f \"$f\" ]; then\n\
                 if [ -r \"$f\" ]; then __rest file; cat -- \"$f\"\n\
                 else __kv readerr \"$(cat -- \"$f\" 2>&1 >/dev/null)\"; fi\n\
                 fi\n",
            );
        let out = ctx.host.exec(&Cmd::script(probe))?;
        tools::missing_tool(&out)?;
        let r = Records::parse(&out.stdout);
        if let Some(err) = r.get("readerr") {
            return Ok(Outcome::failed(format!(
                "Failed to open {file}: {}",
                err.trim()
            )));
        }
        // Ansible keeps `sysctl -n`'s output only when it exits 0.
        let proc_value = match r.get("proc.rc") {
            Some("0") => Some(r.get("proc").unwrap_or_default().to_string()),
            _ => None,
        };
        let before = r
            .rest("file")
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let p = plan(
            &name,
            &value,
            a.state,
            a.reload,
            a.sysctl_set,
            proc_value.as_deref(),
            before.as_deref().unwrap_or(""),
        );
        let mut outcome = Outcome::changed(p.changed);
        if p.write_file && ctx.diff {
            let mut d = diff::file_diff(&file, before.as_deref().unwrap_or(""), &p.content);
            if before.is_none() {
                d.before_header = String::new();
            }
            outcome.diffs.push(d);
        }
        if ctx.check || !(p.set_proc || p.write_file || p.reload) {
            return Ok(outcome);
        }

        let mut script = Script::new()
            .raw(PRELUDE)
            .raw(CAPTURE)
            .raw("LANG=C; LC_MESSAGES=C; export LANG LC_MESSAGES\n")
            .set("f", &file)
            .raw("\n");
        if p.write_file {
            // Uploaded first; the script removes it on any way out that did not move it.
            let temp = format!(
                "{}/{}",
                cmd::parent_dir(&file).trim_end_matches('/'),
                temp_name()
            );
            match ctx.host.put_new(p.content.as_bytes(), &temp, 0o600) {
                Ok(()) => {}
                Err(HostError::Transfer(msg)) => return Ok(Outcome::failed(msg)),
                Err(e) => return Err(e.into()),
            }
            script = script
                .set("t", &temp)
                .raw("\ntrap 'rm -f -- \"$t\"' EXIT\n")
                .raw(WRITE);
        }
        // `sysctl` can fail to set a value and still exit 0: its message on stderr tells.
        let failed_check = "|| exit 1; if printf '%s\\n' \"$__e\" | grep -Eq";
        if p.set_proc {
            script = script
                .raw("__cap set sysctl")
                .raw(if e_flag { "-e" } else { "" })
                .raw("-w")
                .arg(format!("{name}={value}"))
                .raw(failed_check)
                .arg(STDERR_FAILED)
                .raw("; then exit 1; fi\n");
        }
        if p.write_file {
            script = script.raw("__cap write __write || exit 1\n");
        }
        if p.reload {
            script = script
                .raw("__cap reload sysctl")
                .raw(if e_flag { "-e" } else { "" })
                .raw("-p -- \"$f\"")
                .raw(failed_check)
                .arg(STDERR_FAILED)
                .raw("; then exit 1; fi\n");
        }
        let out = ctx.host.exec(&Cmd::script(script))?;
        let r = Records::parse(&out.stdout);
        let step = |key: &str| -> Option<(i32, String, String)> {
            let rc = r.get(&format!("{key}.rc"))?.trim().parse().ok()?;
            let text = |k: String| r.get(&k).unwrap_or_default().to_string();
            Some((rc, text(key.to_string()), text(format!("{key}.err"))))
        };
        if p.set_proc {
            match step("set") {
                Some((0, _, err)) if !stderr_failed(&err) => {}
                Some((_, o, err)) => {
                    return Ok(Outcome::failed(format!("setting {name} failed: {o}{err}")))
                }
                None => return Ok(Outcome::failed(script_failure(&out))),
            }
        }
        if p.write_file {
            match step("write") {
                Some((0, _, _)) => {}
                Some((_, o, err)) => {
                    return Ok(Outcome::failed(format!(
                        "Failed to write to file {file}: {}",
                        format!("{o}{err}").trim()
                    )))
                }
                None => return Ok(Outcome::failed(script_failure(&out))),
            }
        }
        if p.reload {
            match step("reload") {
                Some((0, _, err)) if !stderr_failed(&err) => {}
                Some((_, o, err)) => {
                    return Ok(Outcome::failed(format!(
                        "Failed to reload sysctl: {o}{err}"
                    )))
                }
                None => return Ok(Outcome::failed(script_failure(&out))),
            }
        }
        Ok(outcome)
    }
}

fn script_failure(out: &crate::Output) -> String {
    format!(
        "sysctl: the change script stopped (rc={}): {}",
        out.status,
        out.stderr_str().trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed_as_ansible_does() {
        assert_eq!(parse_value("yes"), "1");
        assert_eq!(parse_value("False"), "0");
        assert_eq!(parse_value(" 4096 87380 6291456 "), "4096 87380 6291456");
        assert!(values_equal(
            Some("4096\t87380  6291456\n"),
            "4096 87380 6291456"
        ));
        assert!(!values_equal(None, "1"));
    }

    #[test]
    fn the_file_is_rewritten_as_ansible_rewrites_it() {
        let text =
            "# comment\n  net.ipv4.ip_forward = 0\nvm.swappiness=10\nnet.ipv4.ip_forward=0\n\n";
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            State::Present,
            true,
            false,
            Some("0"),
            text,
        );
        assert!(p.changed && p.write_file && p.reload && !p.set_proc);
        assert_eq!(
            p.content,
            "# comment\nnet.ipv4.ip_forward=1\nvm.swappiness=10\n\n"
        );
        let p = plan(
            "vm.swappiness",
            "10",
            State::Absent,
            true,
            false,
            Some("60"),
            text,
        );
        assert!(p.changed && p.write_file);
        assert_eq!(p.content, "# comment\nnet.ipv4.ip_forward=0\n\n");
        let p = plan("kernel.x", "1", State::Present, false, false, None, "");
        assert_eq!(p.content, "kernel.x=1\n");
        assert!(!p.reload);
    }

    #[test]
    fn a_converged_file_still_changes_when_the_live_value_differs() {
        let text = "net.ipv4.ip_forward=1\n";
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            State::Present,
            true,
            false,
            Some("1\n"),
            text,
        );
        assert!(!p.changed);
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            State::Present,
            true,
            false,
            Some("0"),
            text,
        );
        assert!(p.changed && p.reload && !p.write_file);
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            State::Present,
            false,
            true,
            Some("0"),
            text,
        );
        assert!(p.changed && p.set_proc && !p.reload);
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            State::Present,
            false,
            false,
            Some("0"),
            text,
        );
        assert!(!p.changed);
    }

    #[test]
    fn stderr_failures_are_recognised() {
        assert!(stderr_failed(
            "x\nsysctl: setting key \"kernel.a\": Read-only file system\n"
        ));
        assert!(!stderr_failed(
            "sysctl: cannot stat /proc/sys/a: No such file"
        ));
    }
}

#[cfg(test)]
mod local_tests {
    use super::*;
    use crate::local::LocalHost;

    fn run(
        module: &dyn Module,
        args: serde_json::Value,
        check: bool,
        diff: bool,
    ) -> Result<Outcome, ModuleError> {
        let serde_json::Value::Object(args) = args else {
            panic!("args must be an object")
        };
        let facts = Map::new();
        let mut host = LocalHost::new("localhost");
        let mut ctx = Ctx {
            host: &mut host,
            check,
            diff,
            facts: &facts,
        };
        module.run(&mut ctx, &args)
    }

    /// A read-only key every Linux has; `reload: false` keeps the live system untouched.
    const KEY: &str = "kernel.ostype";

    #[test]
    fn the_file_converges_without_touching_the_live_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("it's a $(file).conf");
        std::fs::write(&file, "# keep\n kernel.ostype = BSD \n").expect("write");
        let args = serde_json::json!({
            "name": KEY, "value": "Linux", "reload": false,
            "sysctl_file": file.to_str().expect("utf-8"),
        });
        let out = run(&Sysctl, args.clone(), true, true).expect("check");
        assert!(out.changed);
        assert_eq!(out.diffs[0].after, "# keep\nkernel.ostype=Linux\n");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "# keep\n kernel.ostype = BSD \n"
        );
        let out = run(&Sysctl, args.clone(), false, false).expect("first");
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "# keep\nkernel.ostype=Linux\n"
        );
        let out = run(&Sysctl, args, false, false).expect("second");
        assert!(!out.changed, "{out:?}");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }

    #[test]
    fn arguments_are_checked_as_ansible_does() {
        let err = |args| {
            run(&Sysctl, args, true, false)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            err(serde_json::json!({"name": KEY})),
            "state is present but all of the following are missing: value"
        );
        assert_eq!(
            err(serde_json::json!({"name": "", "value": "1"})),
            "name cannot be blank"
        );
        assert_eq!(
            err(serde_json::json!({"name": KEY, "value": ""})),
            "value cannot be blank"
        );
    }
}
