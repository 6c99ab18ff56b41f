//! The `replace` module: replace every match of a Python regular expression in a file,
//! computed on the controller from the file's content and written back atomically.
//!
//! `replace_text` is a pure function following Ansible's `replace.py`: the pattern is
//! compiled with MULTILINE, `after`/`before` narrow the text to the section
//! `after(?P<subsection>.*?)before` (DOTALL), and the substitution is Python's `re.subn`
//! (see `pyre`): `\1`, `\g<1>`, `\g<name>`, `\n` in `replace`, `$` never special.

use serde::Deserialize;

use super::common::{Validate, WantAttrs};
use super::pyre;
use super::textfile::{self, WriteOptions};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `replace`.
pub struct Replace;

#[derive(Debug, Deserialize)]
struct ReplaceArgs {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: String,
    regexp: String,
    #[serde(default)]
    replace: String,
    after: Option<String>,
    before: Option<String>,
    #[serde(default)]
    backup: bool,
    validate: Option<String>,
    encoding: Option<String>,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    /// Accepted for compatibility: every write here is atomic already.
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
    /// SELinux contexts: accepted and ignored.
    #[allow(dead_code)]
    seuser: Option<String>,
    #[allow(dead_code)]
    serole: Option<String>,
    #[allow(dead_code)]
    setype: Option<String>,
    #[allow(dead_code)]
    selevel: Option<String>,
}

/// What `replace_text` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The new text and the number of matches (Ansible counts matches, even ones replaced
    /// by identical text).
    Text(String, usize),
    /// `after`/`before` did not match: Ansible reports this pattern and changes nothing.
    NoSection(String),
}

/// The section pattern Ansible builds from `after`/`before` (empty ones are ignored).
fn section_pattern(after: Option<&str>, before: Option<&str>) -> Option<String> {
    match (
        after.filter(|s| !s.is_empty()),
        before.filter(|s| !s.is_empty()),
    ) {
        (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
        (None, None) => None,
    }
}

/// Replace every match of `regexp` (MULTILINE) by `template` in `text`, or only within the
/// section `after`/`before` delimit. Errors are messages for the task.
pub fn replace_text(
    text: &str,
    regexp: &str,
    template: &str,
    after: Option<&str>,
    before: Option<&str>,
) -> Result<Replaced, String> {
    let (start, end) = match section_pattern(after, before) {
        Some(pattern) => {
            let section_re = pyre::compile(&pattern, false, true)
                .map_err(|e| format!("Unable to compile regular expression '{pattern}': {e}"))?;
            let caps = section_re.captures(text).map_err(|e| e.to_string())?;
            match caps.as_ref().and_then(|c| c.name("subsection")) {
                Some(m) => (m.start(), m.end()),
                None => return Ok(Replaced::NoSection(pattern)),
            }
        }
        None => (0, text.len()),
    };
    let re = pyre::compile(regexp, true, false)
        .map_err(|e| format!("Unable to compile regular expression '{regexp}': {e}"))?;
    let template = pyre::Template::parse(template, &re)
        .map_err(|e| format!("Unable to process replace due to error: {e}"))?;
    let (section, count) = pyre::subn(&re, &template, &text[start..end])
        .map_err(|e| format!("Unable to process replace due to error: {e}"))?;
    Ok(Replaced::Text(
        format!("{}{section}{}", &text[..start], &text[end..]),
        count,
    ))
}

/// Text encodings `encoding` may name: Python's UTF-8 (with undecodable bytes kept as they
/// are, like `surrogateescape`) and Latin-1 (one byte, one character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
}

impl Encoding {
    fn parse(name: Option<&str>) -> Result<Self, ModuleError> {
        let Some(name) = name else {
            return Ok(Self::Utf8);
        };
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            // ASCII files are valid UTF-8; other bytes are kept as they are either way.
            "utf-8" | "utf8" | "u8" | "ascii" | "us-ascii" => Ok(Self::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" | "cp819" => Ok(Self::Latin1),
            _ => Err(ModuleError::Args(format!(
                "encoding {name} is not supported here: use utf-8 or latin-1"
            ))),
        }
    }

    fn decode(self, bytes: &[u8]) -> Option<String> {
        match self {
            Self::Utf8 => pyre::decode(bytes).map(|t| t.into_owned()),
            Self::Latin1 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    }

    /// Latin-1 text here only holds characters from the file or from the arguments; a
    /// character beyond U+00FF cannot be written (Python fails the same way).
    fn encode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Utf8 => Ok(pyre::encode(text)),
            Self::Latin1 => text
                .chars()
                .map(|c| {
                    u8::try_from(u32::from(c)).map_err(|_| {
                        format!("'latin-1' codec can't encode character '{c}': ordinal not in range(256)")
                    })
                })
                .collect(),
        }
    }
}

impl Module for Replace {
    fn name(&self) -> &'static str {
        "replace"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<ReplaceArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw_args: &Map) -> Result<Outcome, ModuleError> {
        let a: ReplaceArgs = args::parse("replace", raw_args)?;
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let validate = a
            .validate
            .as_deref()
            .map(Validate::parse)
            .transpose()
            .map_err(ModuleError::Args)?;
        let encoding = Encoding::parse(a.encoding.as_deref())?;

        let file = match textfile::read(ctx, &a.path)? {
            Ok(file) => file,
            Err(failed) => return Ok(failed),
        };
        if !file.exists() {
            return Ok(Outcome::failed(format!("Path {} does not exist !", a.path)).with("rc", 257));
        }
        let Some(before) = encoding.decode(&file.content) else {
            return Ok(textfile::undecodable(&a.path));
        };

        let replaced = match replace_text(
            &before,
            &a.regexp,
            &a.replace,
            a.after.as_deref(),
            a.before.as_deref(),
        ) {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::failed(e)),
        };
        let (after, count) = match replaced {
            Replaced::Text(after, count) => (after, count),
            Replaced::NoSection(pattern) => {
                return Ok(Outcome::ok().with("rc", 0).with_msg(format!(
                    "Pattern for before/after params did not match the given file: {pattern}"
                )));
            }
        };
        let content_changed = count > 0 && after != before;
        let mut msg = if content_changed {
            format!("{count} replacements made")
        } else {
            String::new()
        };
        let mut outcome = Outcome::changed(content_changed).with("rc", 0);
        if content_changed && ctx.diff {
            // replace.py's diff headers are the bare path.
            let mut d = textfile::content_diff(&a.path, &before, &after);
            d.before_header = a.path.clone();
            d.after_header = a.path.clone();
            outcome.diffs.push(d);
        }
        if content_changed && !ctx.check {
            let bytes = match encoding.encode(&after) {
                Ok(bytes) => bytes,
                Err(e) => return Ok(Outcome::failed(e)),
            };
            let opts = WriteOptions {
                backup: a.backup,
                validate: validate.as_ref(),
                want: &want,
            };
            match textfile::write(ctx, &file, &bytes, &opts)? {
                Ok(Some(backup)) => outcome = outcome.with("backup_file", backup),
                Ok(None) => {}
                Err(e) => return Ok(Outcome::failed(e)),
            }
        }
        // replace.py reports attribute changes without a diff.
        let plan = match textfile::settle_attrs(ctx, &file, &want, content_changed)? {
            Ok(plan) => plan,
            Err(e) => return Ok(Outcome::failed(e)),
        };
        if !plan.is_empty() {
            msg = textfile::attrs_message(&msg, content_changed);
            outcome.changed = true;
        }
        outcome.msg = Some(msg);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::textfile::testkit::{
        check_against_ansible, count_round_trips, run, RecordedCase,
    };

    /// Recorded from `ansible localhost -c local -m replace -a '{json}'` (ansible-core
    /// 2.19): content before, arguments, content after, result.
    #[rustfmt::skip]
    const ANSIBLE_CASES: &[RecordedCase] = &[
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "=1$", "replace": "=2"}"##, Some(b"a=2\nb=2\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "^(\\w)=(\\d)$", "replace": "\\2=\\1"}"##, Some(b"1=a\n1=b\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "^(?P<k>\\w)=", "replace": "\\g<k>:"}"##, Some(b"a:1\nb:1\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "zzz", "replace": "x"}"##, Some(b"a=1\nb=1\n"), r##"{"changed": false, "msg": "", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "a", "replace": "a"}"##, Some(b"a=1\nb=1\n"), r##"{"changed": false, "msg": "", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "=1", "replace": "=1"}"##, Some(b"a=1\nb=1\n"), r##"{"changed": false, "msg": "", "rc": 0}"##),
    (Some(b"a=1\nb=1\n"), r##"{"regexp": "^a.*\\n"}"##, Some(b"b=1\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"regexp": "x", "replace": "y", "after": "\\[s\\]"}"##, Some(b"x\n[s]\ny\n[t]\ny\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"regexp": "x", "replace": "y", "before": "\\[t\\]"}"##, Some(b"y\n[s]\ny\n[t]\nx\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"regexp": "x", "replace": "y", "after": "\\[s\\]", "before": "\\[t\\]"}"##, Some(b"x\n[s]\ny\n[t]\nx\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"regexp": "x", "replace": "y", "after": "\\[zz\\]"}"##, Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"changed": false, "msg": "Pattern for before/after params did not match the given file: \\[zz\\](?P<subsection>.*)", "rc": 0}"##),
    (Some(b"a b\n"), r##"{"regexp": "(a) (b)", "replace": "\\2 $1 \\\\ \\n \\3"}"##, Some(b"a b\n"), r##"{"changed": false, "msg": "Unable to process replace due to error: invalid group reference 3 at position 13"}"##),
    (Some(b"a b\n"), r##"{"regexp": "(a) (b)", "replace": "\\2 $1 \\\\ \\n"}"##, Some(b"b $1 \\ \n\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"abxd"), r##"{"regexp": "x*", "replace": "-"}"##, Some(b"-a-b--d-"), r##"{"changed": true, "msg": "5 replacements made", "rc": 0}"##),
    (Some(b"a\nb\n"), r##"{"regexp": "^", "replace": "# "}"##, Some(b"# a\n# b\n# "), r##"{"changed": true, "msg": "3 replacements made", "rc": 0}"##),
    (Some(b"a\nb\n"), r##"{"regexp": "$", "replace": ";"}"##, Some(b"a;\nb;\n;"), r##"{"changed": true, "msg": "3 replacements made", "rc": 0}"##),
    (Some(b"caf\xe9\n\xff\xfe x\n"), r##"{"regexp": "x", "replace": "y"}"##, Some(b"caf\xe9\n\xff\xfe y\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"caf\xe9\n"), r##"{"regexp": "\u00e9", "replace": "e", "encoding": "latin-1"}"##, Some(b"cafe\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"caf\xc3\xa9\n"), r##"{"regexp": "\u00e9", "replace": "e"}"##, Some(b"cafe\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"a.b\n"), r##"{"regexp": "a\\.b", "replace": "$(id) 'q' \"d\" `x`"}"##, Some(b"$(id) 'q' \"d\" `x`\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (None, r##"{"regexp": "a"}"##, None, r##"{"changed": false, "msg": "Path PATH does not exist !", "rc": 257}"##),
    (Some(b"a\n"), r##"{"replace": "x"}"##, Some(b"a\n"), r##"{"changed": false, "msg": "missing required arguments: regexp"}"##),
    (Some(b"A\na\n"), r##"{"regexp": "(?i)^a$", "replace": "b"}"##, Some(b"b\nb\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"a\n\nb\n"), r##"{"regexp": "\\n\\n", "replace": "\\n"}"##, Some(b"a\nb\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"a=1\n"), r##"{"regexp": "=(\\d)", "replace": "=\\g<1>0"}"##, Some(b"a=10\n"), r##"{"changed": true, "msg": "1 replacements made", "rc": 0}"##),
    (Some(b"a\n"), r##"{"regexp": "a", "replace": "x", "validate": "true"}"##, Some(b"a\n"), r##"{"changed": false, "msg": "validate must contain %s: true"}"##),
    (Some(b"x\n[s]\nx\n[t]\nx\n"), r##"{"regexp": "^x$", "replace": "y", "after": "\\[s\\]\\n"}"##, Some(b"x\n[s]\ny\n[t]\ny\n"), r##"{"changed": true, "msg": "2 replacements made", "rc": 0}"##),
    (Some(b"a\n"), r##"{"regexp": "a", "replace": "\\q"}"##, Some(b"a\n"), r##"{"changed": false, "msg": "Unable to process replace due to error: bad escape \\q at position 0"}"##),
    ];

    #[test]
    fn behaves_like_ansible_on_recorded_cases() {
        for (i, (before, args, after, expected)) in ANSIBLE_CASES.iter().enumerate() {
            check_against_ansible(&Replace, i, *before, args, *after, expected);
        }
    }

    #[test]
    fn first_run_changes_second_is_ok_check_mode_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("conf");
        std::fs::write(&path, "port=80\nhost=a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"regexp": "^port=\\d+$", "replace": "port=8080"}"#;

        let checked = run(&Replace, p, args, true, true).expect("runs");
        assert!(checked.changed);
        assert_eq!(checked.msg.as_deref(), Some("1 replacements made"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "port=80\nhost=a\n"
        );
        assert_eq!(checked.diffs.len(), 1);
        assert_eq!(checked.diffs[0].before_header, p);
        assert_eq!(checked.diffs[0].after, "port=8080\nhost=a\n");

        let first = run(&Replace, p, args, false, false).expect("runs");
        assert!(first.changed);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "port=8080\nhost=a\n"
        );
        let second = run(&Replace, p, args, false, true).expect("runs");
        assert!(!second.changed);
        assert!(second.diffs.is_empty());
        assert_eq!(second.msg.as_deref(), Some(""));
    }

    #[test]
    fn hostile_path_replacement_and_raw_bytes_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("it's \"$(touch pwned)\"\n`id`.txt");
        std::fs::write(&path, b"\xff\xfe raw\nvalue=old\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = serde_json::json!({
            "regexp": "=old$",
            "replace": "='$(id)' \"`x`\" \\\\ $1",
            "backup": true,
        })
        .to_string();
        let out = run(&Replace, p, &args, false, false).expect("runs");
        assert!(out.changed);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"\xff\xfe raw\nvalue='$(id)' \"`x`\" \\ $1\n"
        );
        assert!(!dir.path().join("pwned").exists());
        let backup = out
            .result
            .get("backup_file")
            .and_then(Value::as_str)
            .expect("backup");
        assert_eq!(
            std::fs::read(backup).expect("backup"),
            b"\xff\xfe raw\nvalue=old\n"
        );
    }

    #[test]
    fn mode_alone_is_applied_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"regexp": "zzz", "mode": "0600"}"#;
        let out = run(&Replace, p, args, false, false).expect("runs");
        assert!(out.changed);
        assert_eq!(
            out.msg.as_deref(),
            Some("ownership, perms or SE linux context changed")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!run(&Replace, p, args, false, false).expect("runs").changed);
    }

    #[test]
    fn unsupported_encoding_is_refused() {
        let err = run(
            &Replace,
            "/nonexistent",
            r#"{"regexp": "a", "encoding": "utf-16"}"#,
            false,
            false,
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "encoding utf-16 is not supported here: use utf-8 or latin-1"
        );
    }

    #[test]
    fn round_trips_one_exec_when_ok_one_exec_and_a_put_when_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let (changed, execs, puts) =
            count_round_trips(&Replace, p, r#"{"regexp": "^a$", "replace": "x"}"#);
        assert!(changed.changed);
        assert_eq!((execs, puts), (1, 1));
        let (ok, execs, puts) =
            count_round_trips(&Replace, p, r#"{"regexp": "^a$", "replace": "x"}"#);
        assert!(!ok.changed);
        assert_eq!((execs, puts), (1, 0));
    }
}
