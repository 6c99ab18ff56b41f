//! Package managers: `pacman`, `apt`, and `package` (which picks one); what they share.
//!
//! Each module sends one shell script that reads the target's state (and, unless in check
//! mode, acts on it) and reports back in sections: a line `::play:: <key> <arg>` starts
//! each, the text up to the next such line is its body. [`PRELUDE`] defines the helpers
//! those scripts use; [`Report`] reads what they printed.

pub mod apt;
pub mod package;
pub mod pacman;

use crate::{FileDiff, Map, ModuleError, Value};

/// Shell helpers every package script starts with (after its `need` guards).
///
/// Word splitting is on newlines only and globbing is off, so lists of package names kept
/// in variables (one per line) can be expanded unquoted as separate arguments.
/// - `sec KEY [ARG]` starts a section (on a line of its own, whatever came before).
/// - `tmpd` makes `$W`, a directory removed when the script ends (as is `$rmx`, if set).
/// - `run KEY CMD...` runs CMD with stdout and stderr captured, then prints the sections
///   `KEY <status>` (stdout) and `KEY.err` (stderr); returns CMD's status. The last
///   output stays readable in `"$W/o"` until the next `run`.
/// - `has WORD LIST` tells whether WORD is one of LIST's lines.
pub(crate) const PRELUDE: &str = r#"
NL='
'
IFS=$NL
set -f
LC_ALL=C
export LC_ALL
W=
rmx=
trap '[ -z "$W" ] || rm -rf "$W"; [ -z "$rmx" ] || rm -rf "$rmx"' EXIT
sec() { printf '\n::play:: %s %s\n' "$1" "$2"; }
tmpd() {
  [ -n "$W" ] && return 0
  W=$(mktemp -d)
}
run() {
  k=$1; shift
  tmpd || exit 1
  "$@" >"$W/o" 2>"$W/e"; r=$?
  sec "$k" "$r"; cat "$W/o"; sec "$k.err"; cat "$W/e"
  return $r
}
has() { case "$NL$2$NL" in *"$NL$1$NL"*) return 0;; esac; return 1; }
"#;

/// One section of a script's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub key: String,
    /// The rest of the header line (a status, a path), trimmed.
    pub arg: String,
    pub body: String,
}

/// What a package script printed, section by section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub sections: Vec<Section>,
}

const MARK: &str = "\n::play:: ";

impl Report {
    pub fn parse(stdout: &str) -> Report {
        let mut sections = Vec::new();
        // Every header is printed after a newline of its own, so a body keeps its exact text.
        let text = format!("\n{stdout}");
        let mut rest = text.as_str();
        let Some(first) = rest.find(MARK) else {
            return Report { sections };
        };
        rest = &rest[first + MARK.len()..];
        loop {
            let (header, after) = rest.split_once('\n').unwrap_or((rest, ""));
            let (key, arg) = header.split_once(' ').unwrap_or((header, ""));
            let (body, next) = match after.find(MARK) {
                Some(i) => (&after[..i], Some(&after[i + MARK.len()..])),
                None => (after, None),
            };
            sections.push(Section {
                key: key.to_string(),
                arg: arg.trim().to_string(),
                body: body.to_string(),
            });
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
        Report { sections }
    }

    /// The last section named `key`.
    pub fn get(&self, key: &str) -> Option<&Section> {
        self.sections.iter().rev().find(|s| s.key == key)
    }

    /// A `run` section: the command's status, stdout and stderr.
    pub fn ran(&self, key: &str) -> Option<Ran> {
        let out = self.get(key)?;
        let err = self.get(&format!("{key}.err"));
        Some(Ran {
            status: out.arg.parse().unwrap_or(-1),
            stdout: out.body.clone(),
            stderr: err.map(|e| e.body.clone()).unwrap_or_default(),
        })
    }
}

/// A command the script ran with `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    /// The lines a package manager marked as errors (`error: ...`, `E: ...`), or its last
    /// stderr line when none is marked.
    pub fn errors(&self) -> String {
        let marked: Vec<&str> = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .filter(|l| l.starts_with("error:") || l.starts_with("E:"))
            .collect();
        if marked.is_empty() {
            self.stderr
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string()
        } else {
            marked.join("\n")
        }
    }
}

/// The message for pacman's lock file left behind, or held by a running pacman.
pub(crate) fn pacman_lock_message(path: &str) -> String {
    format!(
        "pacman's database is locked by {path}: another pacman is running, or a crashed one \
         left it; remove it if no pacman runs"
    )
}

/// `stdout`/`stderr` with the `_lines` lists Ansible's action layer adds next to them.
pub(crate) fn put_text(result: &mut Map, key: &str, text: &str) {
    let lines: Vec<Value> = crate::commands::support::python_splitlines(text)
        .into_iter()
        .map(Value::String)
        .collect();
    result.insert(key.to_string(), Value::String(text.to_string()));
    result.insert(format!("{key}_lines"), Value::Array(lines));
}

/// Package names are passed one per line inside the scripts: refuse what cannot be one.
pub(crate) fn check_names(names: &[String]) -> Result<(), ModuleError> {
    match names.iter().find(|n| n.contains(['\n', '\r', '\0'])) {
        Some(bad) => Err(ModuleError::Args(format!(
            "invalid package name {}: a name cannot contain a line break",
            crate::pyfmt::str_repr(bad)
        ))),
        None => Ok(()),
    }
}

/// A before/after listing of packages for `--diff` (one entry per line, sorted).
pub(crate) fn list_diff(mut before: Vec<String>, mut after: Vec<String>) -> FileDiff {
    before.sort();
    after.sort();
    let join = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("{}\n", v.join("\n"))
        }
    };
    FileDiff {
        before_header: String::new(),
        after_header: String::new(),
        before: join(&before),
        after: join(&after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::{Cmd, Host, Script};

    #[test]
    fn sections_keep_their_exact_text() {
        let r = Report::parse(
            "noise\n::play:: a 0\nx\ny\n::play:: a.err \nno newline\n::play:: b /p q\n",
        );
        assert_eq!(r.sections.len(), 3);
        assert_eq!(r.get("a").map(|s| s.body.as_str()), Some("x\ny"));
        let ran = r.ran("a").expect("ran");
        assert_eq!((ran.status, ran.stderr.as_str()), (0, "no newline"));
        assert_eq!(r.get("b").map(|s| s.arg.as_str()), Some("/p q"));
        assert_eq!(r.get("b").map(|s| s.body.as_str()), Some(""));
    }

    #[test]
    fn the_prelude_reports_commands_section_by_section() {
        let mut host = LocalHost::new("localhost");
        let script = Script::new()
            .raw(PRELUDE)
            .raw("run one printf 'a\\nb'; run two sh -c 'echo out; echo bad >&2; exit 3'; l='x y\nz'; has z \"$l\" && sec yes; has x \"$l\" || sec no");
        let out = host.exec(&Cmd::script(script)).expect("runs");
        let r = Report::parse(&out.stdout_str());
        let one = r.ran("one").expect("one");
        assert_eq!((one.status, one.stdout.as_str()), (0, "a\nb"));
        let two = r.ran("two").expect("two");
        assert_eq!(
            (two.status, two.stdout.as_str(), two.stderr.as_str()),
            (3, "out\n", "bad\n")
        );
        assert_eq!(two.errors(), "bad");
        assert!(r.get("yes").is_some() && r.get("no").is_some(), "{r:?}");
    }

    #[test]
    fn names_with_line_breaks_are_refused() {
        let err = check_names(&["ok".into(), "a\nb".into()]).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid package name 'a\\nb': a name cannot contain a line break"
        );
    }
}
