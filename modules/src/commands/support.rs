//! Shared pieces of the command-running modules: Python's `shlex.split`, Ansible's
//! `$VAR`/`~` expansion performed on the target, the run preamble (chdir, creates/removes,
//! executable lookup) and its status records, Python's `splitlines`, and timestamps.

use std::time::Duration;

use crate::{Map, ModuleError, Script, Value};

/// Split `text` into words exactly as Python's `shlex.split(text)` does (POSIX mode,
/// no comments): quotes group, a backslash escapes outside quotes, and inside double
/// quotes only before `"` or `\`. Python's errors keep Python's wording.
pub fn python_shlex_split(text: &str) -> Result<Vec<String>, String> {
    python_shlex(text, false)
}

/// Python's POSIX `shlex` with `whitespace_split`; with `comments`, `#` outside quotes
/// ends the word and skips the rest of the line (`shlex.shlex`'s default, used to read
/// os-release files).
pub fn python_shlex(text: &str, comments: bool) -> Result<Vec<String>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Between,
        Word,
        Quote(char),
        Escape(Option<char>),
    }
    let mut words = Vec::new();
    let mut token = String::new();
    let mut quoted = false;
    let mut state = State::Between;
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut in_comment = false;
    for c in text.chars() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        match state {
            State::Between | State::Word => {
                if comments && c == '#' {
                    if !token.is_empty() || quoted {
                        words.push(std::mem::take(&mut token));
                    }
                    quoted = false;
                    state = State::Between;
                    in_comment = true;
                } else if is_space(c) {
                    // A word ends; `''` makes an (empty) word of its own.
                    if !token.is_empty() || quoted {
                        words.push(std::mem::take(&mut token));
                    }
                    quoted = false;
                    state = State::Between;
                } else if c == '\\' {
                    state = State::Escape(None);
                } else if c == '\'' || c == '"' {
                    state = State::Quote(c);
                } else {
                    token.push(c);
                    state = State::Word;
                }
            }
            State::Quote(q) => {
                quoted = true;
                if c == q {
                    state = State::Word;
                } else if c == '\\' && q == '"' {
                    state = State::Escape(Some(q));
                } else {
                    token.push(c);
                }
            }
            State::Escape(inside) => {
                // Inside double quotes, only the quote itself or a backslash can be escaped.
                if let Some(q) = inside {
                    if c != q && c != '\\' {
                        token.push('\\');
                    }
                }
                token.push(c);
                state = match inside {
                    Some(q) => State::Quote(q),
                    None => State::Word,
                };
            }
        }
    }
    match state {
        State::Quote(_) => Err("No closing quotation".into()),
        State::Escape(_) => Err("No escaped character".into()),
        _ => {
            if !token.is_empty() || quoted {
                words.push(token);
            }
            Ok(words)
        }
    }
}

/// Python's `shlex.quote`, for rendering an argv as one string the way Ansible shows it.
pub fn python_shlex_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if word.is_empty() {
        "''".into()
    } else if word.chars().all(safe) {
        word.into()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

/// One piece of a value to expand: literal text, or a `$NAME`/`${NAME}` reference that is
/// replaced when `NAME` is in the environment and otherwise kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var { name: String, written: String },
}

/// Cut `text` as Python's `os.path.expandvars` scans it: `$` followed by ASCII word
/// characters, or `${...}` up to the first `}`. References whose name is not a valid
/// environment name can never be set, so they stay literal.
fn expandvars_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let (name, end) = if bytes.get(i + 1) == Some(&b'{') {
                match text[i + 2..].find('}') {
                    Some(close) => (&text[i + 2..i + 2 + close], i + 3 + close),
                    None => ("", i),
                }
            } else {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&text[i + 1..i + 1 + len], i + 1 + len)
            };
            if end > i && crate::cmd::is_env_name(name) {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var {
                    name: name.to_string(),
                    written: text[i..end].to_string(),
                });
                i = end;
                continue;
            }
            if end > i {
                literal.push_str(&text[i..end]);
                i = end;
                continue;
            }
        }
        // Copy one whole character (text is UTF-8; `$` is ASCII so slicing stays on boundaries).
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        literal.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    pieces
}

/// Shell functions the preamble scripts rely on. Fixed text: values only ever reach them
/// as quoted arguments or variables.
///
/// - `play_st`: print status records (NUL-terminated fields) for the controller to read.
/// - `play_var NAME`: `play_v` = the value of exported variable NAME (awk's `ENVIRON`,
///   which every awk has, unlike `printenv`); fails when unset (as `os.environ[NAME]`
///   would), keeping trailing newlines of the value.
/// - `play_tilde`: `os.path.expanduser` applied to `$play_a`.
/// - `play_glob PATTERN`: succeeds when the pattern matches something, as `glob.glob`.
/// - `play_find PROG`: `play_err` = 2 (ENOENT), 13 (EACCES) or empty when PROG can be executed,
///   searching `$PATH` as `execvp` does.
pub const PRELUDE: &str = r#"play_st() { printf '%s\0' "$@"; }
play_var() {
  play_v=$(awk -v n="$1" 'BEGIN { if (n in ENVIRON) { printf "%sx", ENVIRON[n]; exit 0 } exit 1 }') || return 1
  play_v=${play_v%x}
}
play_tilde() {
  case $play_a in
  "~"*)
    play_r=${play_a#?}; play_n=${play_r%%/*}; play_t=${play_r#"$play_n"}; play_h=
    if [ -z "$play_n" ]; then
      if play_var HOME; then play_h=$play_v; play_ok=1
      else play_h=$( (getent passwd "$(id -u)" || awk -F: -v u="$(id -u)" '$3 == u' /etc/passwd) 2>/dev/null | head -n 1 | cut -d: -f6)
        if [ -n "$play_h" ]; then play_ok=1; else play_ok=; fi
      fi
    else
      case $play_n in
      -*|*[!A-Za-z0-9._-]*) play_ok= ;;
      *) play_e=$( (getent passwd "$play_n" || awk -F: -v n="$play_n" '$1 == n' /etc/passwd) 2>/dev/null | head -n 1)
         if [ "${play_e%%:*}" = "$play_n" ]; then play_h=$(printf '%s\n' "$play_e" | cut -d: -f6); play_ok=1; else play_ok=; fi ;;
      esac
    fi
    if [ -n "$play_ok" ]; then
      while :; do case $play_h in */) play_h=${play_h%/} ;; *) break ;; esac; done
      play_a=$play_h$play_t; [ -n "$play_a" ] || play_a=/
    fi ;;
  esac
}
play_glob() (
  IFS=; set +f
  for play_f in $1; do if [ -e "$play_f" ] || [ -L "$play_f" ]; then exit 0; fi; done
  exit 1
)
play_find() {
  case $1 in
  */*) if [ -d "$1" ]; then play_err=13; elif [ -e "$1" ]; then if [ -x "$1" ]; then play_err=; else play_err=13; fi; else play_err=2; fi ;;
  *) play_err=2; play_ifs=$IFS; IFS=:; set -f
     for play_d in ${PATH-/bin:/usr/bin}; do
       play_c=${play_d:-.}/$1
       if [ -f "$play_c" ] && [ -x "$play_c" ]; then play_err=; break; fi
       if [ -e "$play_c" ]; then play_err=13; fi
     done
     set +f; IFS=$play_ifs ;;
  esac
}
play_now() { date '+%Y-%m-%d %H:%M:%S %N' 2>/dev/null; }
"#;

/// Append shell that sets `$play_a` to `text`, expanded on the target as Ansible's
/// `expanduser(expandvars(text))` would be when `expand` is set (`$NAME`/`${NAME}` from the
/// target's environment, unknown names kept as written; then a leading `~`/`~user`).
pub fn set_expanded(mut script: Script, text: &str, expand: bool) -> Script {
    if !expand {
        return script.set("play_a", text).raw(";");
    }
    script = script.raw("play_a=;");
    for piece in expandvars_pieces(text) {
        script = match piece {
            Piece::Literal(lit) => script
                .set("play_l", lit)
                .raw("; play_a=$play_a$play_l;"),
            Piece::Var { name, written } => script
                .set("play_n", name)
                .raw(";")
                .set("play_l", written)
                .raw(
                    "; if play_var \"$play_n\"; then play_a=$play_a$play_v; else play_a=$play_a$play_l; fi;",
                ),
        };
    }
    script.raw("play_tilde;")
}

/// Where the preamble of a command script stopped, as reported in its status records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// `cd` failed; the expanded directory.
    ChdirFailed(String),
    /// `creates` matched; the expanded pattern.
    Creates(String),
    /// `removes` matched nothing; the expanded pattern.
    Removes(String),
    /// Check mode: the command would run.
    WouldRun,
    /// The program could not be executed: errno (2 or 13) and the program name.
    ExecError(i32, String),
    /// The command ran; the target's start time (`date` output, may be empty).
    Ran { started: String },
    /// Ready to run: a value the caller asked for (the `script` module's temp dir).
    Ready(String),
}

/// Split the status records off the front of a preamble script's stdout. Returns the
/// status and the command's own output. `None` when stdout does not start with a record
/// (the script itself failed before it could say anything).
pub fn read_preamble(stdout: &[u8]) -> Option<(Preamble, &[u8])> {
    let mut rest = stdout;
    let mut field = || -> Option<String> {
        let end = rest.iter().position(|b| *b == 0)?;
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        Some(value)
    };
    let status = match field()?.as_str() {
        "chdir" => Preamble::ChdirFailed(field()?),
        "creates" => Preamble::Creates(field()?),
        "removes" => Preamble::Removes(field()?),
        "would-run" => Preamble::WouldRun,
        "exec-error" => {
            let errno = field()?.parse().ok()?;
            Preamble::ExecError(errno, field()?)
        }
        "ready" => Preamble::Ready(field()?),
        "run" => Preamble::Ran {
            started: field()?.trim().to_string(),
        },
        _ => return None,
    };
    Some((status, rest))
}

/// The options every command-running module shares: where to run and when to skip.
#[derive(Debug, Clone, Default)]
pub struct Guards<'a> {
    pub chdir: Option<&'a str>,
    pub creates: Option<&'a str>,
    pub removes: Option<&'a str>,
    /// Expand `$VAR`/`~` in chdir/creates/removes (Ansible's `type: path`).
    pub expand_paths: bool,
    /// creates/removes are globs (`command`) rather than plain paths (`script`).
    pub glob: bool,
}

/// The preamble: prelude functions, `cd`, then the creates/removes checks, each reporting
/// through a status record and exiting 0 when it stops the run.
pub fn guard_script(guards: &Guards<'_>) -> Script {
    let mut s = Script::new().raw(PRELUDE);
    if let Some(dir) = guards.chdir.filter(|d| !d.is_empty()) {
        s = set_expanded(s, dir, guards.expand_paths).raw(
            "\ncase $play_a in -*) play_a=./$play_a ;; esac\n\
             CDPATH= cd \"$play_a\" 2>/dev/null || { play_st chdir \"$play_a\"; exit 0; }\n",
        );
    }
    if let Some(pattern) = guards.creates.filter(|p| !p.is_empty()) {
        s = set_expanded(s, pattern, guards.expand_paths).raw(if guards.glob {
            "\nif play_glob \"$play_a\"; then play_st creates \"$play_a\"; exit 0; fi\n"
        } else {
            "\nif [ -e \"$play_a\" ]; then play_st creates \"$play_a\"; exit 0; fi\n"
        });
    }
    if let Some(pattern) = guards.removes.filter(|p| !p.is_empty()) {
        s = set_expanded(s, pattern, guards.expand_paths).raw(if guards.glob {
            "\nif play_glob \"$play_a\"; then :; else play_st removes \"$play_a\"; exit 0; fi\n"
        } else {
            "\nif [ -e \"$play_a\" ]; then :; else play_st removes \"$play_a\"; exit 0; fi\n"
        });
    }
    s
}

/// Python's `str.splitlines()`: every line boundary Python knows, no trailing empty line.
pub fn python_splitlines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => lines.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Add `stdout`, `stdout_lines`, `stderr`, `stderr_lines` as Ansible reports them; with
/// `strip`, trailing `\r`/`\n` are removed first (`strip_empty_ends`).
pub fn put_output(result: &mut Map, stdout: &[u8], stderr: &[u8], strip: bool) {
    for (key, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if strip {
            let kept = text.trim_end_matches(['\r', '\n']).len();
            text.truncate(kept);
        }
        let lines: Vec<Value> = python_splitlines(&text)
            .into_iter()
            .map(Value::String)
            .collect();
        result.insert(key.into(), Value::String(text));
        result.insert(format!("{key}_lines"), Value::Array(lines));
    }
}

/// A wall-clock time without a zone, as Python's naive `datetime` (the target's local time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Days since 1970-01-01.
    days: i64,
    /// Microseconds since midnight.
    micros: i64,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl LocalTime {
    /// Parse `date '+%Y-%m-%d %H:%M:%S %N'` output; a missing or non-numeric `%N`
    /// (busybox without nanoseconds) counts as zero.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let date = parts.next()?;
        let time = parts.next()?;
        let nanos: i64 = parts
            .next()
            .filter(|n| n.len() == 9 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
        let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
        let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
        if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        Some(Self {
            days: days_from_civil(y, m, dd),
            micros: ((h * 60 + mi) * 60 + s) * 1_000_000 + nanos / 1000,
        })
    }

    /// The controller's clock in UTC, when the target could not tell its own time.
    pub fn now_utc() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let micros = i64::try_from(since.as_micros()).unwrap_or(0);
        Self {
            days: micros.div_euclid(MICROS_PER_DAY),
            micros: micros.rem_euclid(MICROS_PER_DAY),
        }
    }

    pub fn plus(self, elapsed: Duration) -> Self {
        self.shifted(i64::try_from(elapsed.as_micros()).unwrap_or(0))
    }

    pub fn minus(self, elapsed: Duration) -> Self {
        self.shifted(-i64::try_from(elapsed.as_micros()).unwrap_or(0))
    }

    fn shifted(self, micros: i64) -> Self {
        let total = self.micros + micros;
        Self {
            days: self.days + total.div_euclid(MICROS_PER_DAY),
            micros: total.rem_euclid(MICROS_PER_DAY),
        }
    }

    /// Python's `str(datetime)`: `2024-05-01 12:00:00.123456`, no fraction when it is zero.
    pub fn python_str(&self) -> String {
        let (y, m, d) = civil_from_days(self.days);
        let secs = self.micros / 1_000_000;
        let frac = self.micros % 1_000_000;
        let mut s = format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if frac != 0 {
            s.push_str(&format!(".{frac:06}"));
        }
        s
    }
}

/// Python's `str(timedelta)`: `0:00:00.003412`, `1 day, 2:03:04`.
pub fn python_timedelta(elapsed: Duration) -> String {
    let micros = elapsed.as_micros();
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let mut s = String::new();
    if days > 0 {
        s.push_str(&format!("{days} day{}, ", if days == 1 { "" } else { "s" }));
    }
    s.push_str(&format!(
        "{}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ));
    if frac != 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from `days_from_civil`.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `start`, `end` and `delta` for a command that started at the target's `started` time
/// (`date` output) and took `elapsed` as the controller measured it.
pub fn put_times(result: &mut Map, started: &str, elapsed: Duration) {
    let start = LocalTime::parse(started).unwrap_or_else(|| LocalTime::now_utc().minus(elapsed));
    result.insert("start".into(), Value::String(start.python_str()));
    result.insert(
        "end".into(),
        Value::String(start.plus(elapsed).python_str()),
    );
    result.insert("delta".into(), Value::String(python_timedelta(elapsed)));
}

/// Python's `strerror` for the errors the executable lookup reports.
pub fn strerror(errno: i32) -> &'static str {
    match errno {
        2 => "No such file or directory",
        13 => "Permission denied",
        _ => "Unknown error",
    }
}

/// `true` for `default = true` serde fields.
pub fn yes() -> bool {
    true
}

/// A bad argument, as a module error.
pub fn arg_error(msg: impl Into<String>) -> ModuleError {
    ModuleError::Args(msg.into())
}

/// Run a module against `LocalHost` with JSON arguments (tests of every command module).
#[cfg(test)]
pub(crate) fn run_module(
    module: &dyn crate::Module,
    check: bool,
    args: Value,
) -> Result<crate::Outcome, ModuleError> {
    let mut host = crate::local::LocalHost::new("localhost");
    let facts = Map::new();
    let mut ctx = crate::Ctx {
        host: &mut host,
        check,
        diff: false,
        facts: &facts,
    };
    let map = match args {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    module.run(&mut ctx, &map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        python_shlex_split(s).expect("splits")
    }

    #[test]
    fn shlex_split_matches_python() {
        // Expected values come from Python 3's shlex.split.
        assert_eq!(
            split("echo 'a b' \"c d\" e\\ f"),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(
            split(r#"a "x\$y" "q\"q" 'z\n'"#),
            ["a", r"x\$y", "q\"q", r"z\n"]
        );
        assert_eq!(split("a '' \"\" b"), ["a", "", "", "b"]);
        assert_eq!(
            split("  a#b  # not a comment  "),
            ["a#b", "#", "not", "a", "comment"]
        );
        assert_eq!(split("x''y \"\"z"), ["xy", "z"]);
        assert_eq!(split("a\tb\nc\r\nd"), ["a", "b", "c", "d"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("ünï 'cödé'"), ["ünï", "cödé"]);
        assert_eq!(
            python_shlex_split("'open").expect_err("err"),
            "No closing quotation"
        );
        assert_eq!(
            python_shlex_split("a\\").expect_err("err"),
            "No escaped character"
        );
        // shlex.shlex(posix=True) with whitespace_split, as distro reads os-release.
        assert_eq!(
            python_shlex("A=1 # c\nB=\"x y\"#z\nC='#'", true).expect("splits"),
            ["A=1", "B=x y", "C=#"]
        );
    }

    #[test]
    fn shlex_quote_matches_python() {
        assert_eq!(python_shlex_quote("abc/d-e.f"), "abc/d-e.f");
        assert_eq!(python_shlex_quote("a b"), "'a b'");
        assert_eq!(python_shlex_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(python_shlex_quote(""), "''");
    }

    #[test]
    fn expandvars_cuts_like_python() {
        let lit = |s: &str| Piece::Literal(s.into());
        let var = |n: &str, w: &str| Piece::Var {
            name: n.into(),
            written: w.into(),
        };
        assert_eq!(
            expandvars_pieces("$HOME/x${USER}y$1 ${A B} $ ${} é$"),
            vec![
                var("HOME", "$HOME"),
                lit("/x"),
                var("USER", "${USER}"),
                lit("y$1 ${A B} $ ${} é$"),
            ]
        );
        assert_eq!(expandvars_pieces("${unclosed"), vec![lit("${unclosed")]);
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(
            python_splitlines("a\nb\r\nc\rd\x0be\x0cf"),
            ["a", "b", "c", "d", "e", "f"]
        );
        assert_eq!(python_splitlines("a\n\n"), ["a", ""]);
        assert_eq!(python_splitlines(""), Vec::<String>::new());
        assert_eq!(python_splitlines("x\u{2028}y"), ["x", "y"]);
    }

    #[test]
    fn times_format_like_python() {
        let t = LocalTime::parse("2024-02-29 23:59:59 999999000").expect("parses");
        assert_eq!(t.python_str(), "2024-02-29 23:59:59.999999");
        assert_eq!(
            t.plus(Duration::from_micros(1)).python_str(),
            "2024-03-01 00:00:00"
        );
        assert_eq!(
            LocalTime::parse("1999-12-31 10:00:00 %N")
                .expect("parses")
                .python_str(),
            "1999-12-31 10:00:00"
        );
        assert_eq!(
            python_timedelta(Duration::from_micros(3412)),
            "0:00:00.003412"
        );
        assert_eq!(
            python_timedelta(Duration::from_secs(90061)),
            "1 day, 1:01:01"
        );
        assert_eq!(
            python_timedelta(Duration::from_secs(3 * 86400)),
            "3 days, 0:00:00"
        );
        assert_eq!(civil_from_days(days_from_civil(1969, 7, 20)), (1969, 7, 20));
    }

    #[test]
    fn preamble_records_are_read() {
        let out = b"run\x002024-01-01 00:00:00 000000000\x00hello\n";
        let (status, rest) = read_preamble(out).expect("status");
        assert_eq!(
            status,
            Preamble::Ran {
                started: "2024-01-01 00:00:00 000000000".into()
            }
        );
        assert_eq!(rest, b"hello\n");
        assert_eq!(read_preamble(b"garbage"), None);
        assert_eq!(
            read_preamble(b"exec-error\x002\x00foo\x00").map(|p| p.0),
            Some(Preamble::ExecError(2, "foo".into()))
        );
    }
}
