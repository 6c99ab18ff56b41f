//! The `blockinfile` module: keep a block of lines between two marker lines in a file,
//! computed on the controller from the file's content and written back atomically.
//!
//! `apply_block` is a pure function following Ansible's `blockinfile.py`: the last BEGIN and
//! the last END marker delimit the old block, which is replaced in place; without both, the
//! block goes after the last line matching `insertafter` (or at EOF), or before the last
//! line matching `insertbefore` (or at BOF). Lines split as Python's `bytes.splitlines`
//! does (`\n`, `\r\n`, `\r`). A `(?m)` pattern is searched in the whole text.
//!
//! Deviations, on purpose:
//! - A marker line is recognised without regard to its line ending. Ansible compares whole
//!   lines including `\n`, so an END marker on a last line without a newline is never found:
//!   `state=absent` then reports "Block removed" and only adds a newline, and the block can
//!   never be removed. Here it is removed.
//! - When nothing is inserted and no block was found (`state=absent`, or an empty `block`),
//!   the file is left as it is. Ansible still adds a missing final newline and reports
//!   "Block removed" although there was no block.

use serde::Deserialize;

use super::common::{Validate, WantAttrs};
use super::pyre;
use super::textfile::{self, WriteOptions};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `blockinfile`.
pub struct BlockInFile;

#[derive(Debug, Deserialize)]
struct BlockInFileArgs {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: String,
    state: Option<State>,
    marker: Option<String>,
    #[serde(alias = "content")]
    block: Option<String>,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    backup: bool,
    validate: Option<String>,
    marker_begin: Option<String>,
    marker_end: Option<String>,
    #[serde(default)]
    append_newline: bool,
    #[serde(default)]
    prepend_newline: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Present,
    Absent,
}

/// Where a block goes when the file has no complete old block.
#[derive(Debug)]
pub enum Insert<'a> {
    /// `insertafter: EOF` (the default).
    Eof,
    /// `insertbefore: BOF`.
    Bof,
    /// After the last line matching `insertafter` (EOF when none does).
    After(&'a fancy_regex::Regex),
    /// Before the last line matching `insertbefore` (EOF when none does).
    Before(&'a fancy_regex::Regex),
}

/// Everything the edit needs besides the content.
#[derive(Debug)]
pub struct BlockSpec<'a> {
    /// The BEGIN and END marker lines, without line ending.
    pub begin: &'a str,
    pub end: &'a str,
    /// The block's text; `None` removes the block (`state=absent` or an empty block).
    pub block: Option<&'a str>,
    pub insert: Insert<'a>,
    /// Whether the insert pattern carries `(?m)`: then it is searched in the whole text.
    pub multiline: bool,
    pub prepend_newline: bool,
    pub append_newline: bool,
}

/// Python's `splitlines(keepends=True)` for bytes: after `\n`, `\r\n` or a lone `\r`.
fn split_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => Some(i + 1),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        };
        match end {
            Some(end) => {
                lines.push(text[start..end].to_string());
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < text.len() {
        lines.push(text[start..].to_string());
    }
    lines
}

fn strip_eol(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// The file's new text (`original` is `None` for a file being created).
pub fn apply_block(original: Option<&str>, spec: &BlockSpec<'_>) -> Result<String, String> {
    let text = original.unwrap_or("");
    let mut lines = split_lines(text);
    let block_lines: Vec<String> = match spec.block {
        Some(block) => {
            let mut block = block.to_string();
            if !block.ends_with('\n') {
                block.push('\n');
            }
            let mut all = vec![format!("{}\n", spec.begin)];
            all.extend(split_lines(&block));
            all.push(format!("{}\n", spec.end));
            all
        }
        None => Vec::new(),
    };

    let mut begin_at = None;
    let mut end_at = None;
    for (i, line) in lines.iter().enumerate() {
        let bare = strip_eol(line);
        if bare == spec.begin {
            begin_at = Some(i);
        }
        if bare == spec.end {
            end_at = Some(i);
        }
    }

    let mut at = match (begin_at, end_at) {
        (Some(b), Some(e)) => {
            let (from, to) = if b < e { (b, e) } else { (e, b) };
            lines.drain(from..=to);
            from
        }
        _ if block_lines.is_empty() => return Ok(text.to_string()),
        _ => insert_position(text, &lines, spec)?,
    };

    if at > 0 && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    let present = !block_lines.is_empty();
    if spec.prepend_newline && present && at != 0 && lines[at - 1] != "\n" {
        lines.insert(at, "\n".into());
        at += 1;
    }
    let after_block = at + block_lines.len();
    lines.splice(at..at, block_lines);
    if spec.append_newline && present && after_block < lines.len() && lines[after_block] != "\n" {
        lines.insert(after_block, "\n".into());
    }
    Ok(lines.concat())
}

/// The line index a new block goes to.
fn insert_position(text: &str, lines: &[String], spec: &BlockSpec<'_>) -> Result<usize, String> {
    let (re, after) = match spec.insert {
        Insert::Eof => return Ok(lines.len()),
        Insert::Bof => return Ok(0),
        Insert::After(re) => (re, true),
        Insert::Before(re) => (re, false),
    };
    let mut found = None;
    if spec.multiline {
        if let Some(m) = re.find(text).map_err(|e| e.to_string())? {
            let upto = if after { m.end() } else { m.start() };
            found = Some(text[..upto].matches('\n').count());
        }
    } else {
        for (i, line) in lines.iter().enumerate() {
            if re.is_match(line).map_err(|e| e.to_string())? {
                found = Some(i);
            }
        }
    }
    Ok(match found {
        None => lines.len(),
        Some(i) if after => i + 1,
        Some(i) => i,
    })
}

/// `marker` with `{mark}` replaced as Ansible does it (`re.sub`, so the replacement's
/// backslash escapes are processed).
fn marker_line(marker: &str, mark: &str) -> Result<String, ModuleError> {
    let re = pyre::compile(r"\{mark\}", false, false).map_err(ModuleError::Failed)?;
    let template = pyre::Template::parse(mark, &re).map_err(ModuleError::Args)?;
    pyre::subn(&re, &template, marker)
        .map(|(line, _)| line)
        .map_err(ModuleError::Failed)
}

impl Module for BlockInFile {
    fn name(&self) -> &'static str {
        "blockinfile"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<BlockInFileArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw_args: &Map) -> Result<Outcome, ModuleError> {
        let a: BlockInFileArgs = args::parse("blockinfile", raw_args)?;
        if a.insertafter.is_some() && a.insertbefore.is_some() {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: insertbefore|insertafter".into(),
            ));
        }
        let present = a.state.unwrap_or(State::Present) == State::Present;
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let validate = a
            .validate
            .as_deref()
            .map(Validate::parse)
            .transpose()
            .map_err(ModuleError::Args)?;
        let marker = a
            .marker
            .as_deref()
            .unwrap_or("# {mark} ANSIBLE MANAGED BLOCK");
        let begin = marker_line(marker, a.marker_begin.as_deref().unwrap_or("BEGIN"))?;
        let end = marker_line(marker, a.marker_end.as_deref().unwrap_or("END"))?;
        let pattern = match (&a.insertafter, &a.insertbefore) {
            (Some(after), _) if after != "EOF" => Some(after),
            (None, Some(before)) if before != "BOF" => Some(before),
            _ => None,
        };
        let insert_re = pattern
            .map(|p| {
                pyre::compile(p, false, false).map_err(|e| {
                    ModuleError::Args(format!("Unable to compile regular expression '{p}': {e}"))
                })
            })
            .transpose()?;

        let file = match textfile::read(ctx, &a.path)? {
            Ok(file) => file,
            Err(failed) => return Ok(failed),
        };
        let exists = file.exists();
        if !exists && !a.create {
            return Ok(Outcome::failed(format!("Path {} does not exist !", a.path)).with("rc", 257));
        }
        if !exists && !present {
            return Ok(Outcome::ok().with_msg(format!("File {} not present", a.path)));
        }
        let Some(before) = pyre::decode(&file.content) else {
            return Ok(textfile::undecodable(&a.path));
        };

        let block = a.block.as_deref().filter(|b| present && !b.is_empty());
        let spec = BlockSpec {
            begin: &begin,
            end: &end,
            block,
            insert: match (&insert_re, &a.insertafter, &a.insertbefore) {
                (Some(re), Some(_), _) => Insert::After(re),
                (Some(re), None, _) => Insert::Before(re),
                (None, None, Some(_)) => Insert::Bof,
                (None, _, _) => Insert::Eof,
            },
            multiline: pattern.is_some_and(|p| pyre::has_inline_multiline(p)),
            prepend_newline: a.prepend_newline,
            append_newline: a.append_newline,
        };
        let after =
            apply_block(exists.then_some(before.as_ref()), &spec).map_err(ModuleError::Failed)?;

        // A file being created counts as changed even when it stays empty, as in Ansible.
        let content_changed = !exists || after != before;
        let mut msg = match (content_changed, exists, block.is_some()) {
            (false, _, _) => "",
            (true, false, _) => "File created",
            (true, true, false) => "Block removed",
            (true, true, true) => "Block inserted",
        }
        .to_string();
        let mut outcome = Outcome::changed(content_changed);
        if ctx.diff && content_changed {
            outcome
                .diffs
                .push(textfile::content_diff(&a.path, &before, &after));
        }
        let mut backup = None;
        if content_changed && !ctx.check {
            let opts = WriteOptions {
                backup: a.backup,
                validate: validate.as_ref(),
                want: &want,
            };
            match textfile::write(ctx, &file, &pyre::encode(&after), &opts)? {
                Ok(path) => backup = path,
                Err(e) => return Ok(Outcome::failed(e)),
            }
        }
        let plan = match textfile::settle_attrs(ctx, &file, &want, content_changed)? {
            Ok(plan) => plan,
            Err(e) => return Ok(Outcome::failed(e)),
        };
        if !plan.is_empty() {
            msg = textfile::attrs_message(&msg, content_changed);
            outcome.changed = true;
            if ctx.diff {
                outcome.diffs.extend(textfile::attrs_diff(&a.path, &plan));
            }
        }
        outcome.msg = Some(msg);
        if let Some(backup) = backup {
            outcome = outcome.with("backup_file", backup);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::textfile::testkit::{
        check_against_ansible, count_round_trips, run, RecordedCase,
    };

    /// Recorded from `ansible localhost -c local -m blockinfile -a '{json}'` (ansible-core
    /// 2.19): content before, arguments, content after, result.
    #[rustfmt::skip]
    const ANSIBLE_CASES: &[RecordedCase] = &[
    (Some(b"a\nb\n"), r##"{"block": "x\ny"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb"), r##"{"block": "x"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b""), r##"{"block": "x"}"##, Some(b"# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"block": "x"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"changed": false, "msg": ""}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"block": "new\nlines"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nnew\nlines\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"state": "absent"}"##, Some(b"a\nb\n"), r##"{"changed": true, "msg": "Block removed"}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"block": ""}"##, Some(b"a\nb\n"), r##"{"changed": true, "msg": "Block removed"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertafter": "^a"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\na\n"), r##"{"block": "x", "insertafter": "^a"}"##, Some(b"a\nb\na\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertbefore": "^b"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertbefore": "BOF"}"##, Some(b"# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\na\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertafter": "EOF"}"##, Some(b"a\nb\nc\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertafter": "^zz"}"##, Some(b"a\nb\nc\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertbefore": "^zz"}"##, Some(b"a\nb\nc\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "marker": "// {mark} managed", "marker_begin": "start", "marker_end": "stop"}"##, Some(b"a\nb\nc\n// start managed\nx\n// stop managed\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertafter": "^a", "prepend_newline": true, "append_newline": true}"##, Some(b"a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n\nb\n"), r##"{"block": "x", "insertafter": "^a", "prepend_newline": true, "append_newline": true}"##, Some(b"a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertbefore": "BOF", "prepend_newline": true, "append_newline": true}"##, Some(b"# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\na\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "prepend_newline": true, "append_newline": true}"##, Some(b"a\nb\nc\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertafter": "(?m)^b\\nc"}"##, Some(b"a\nb\nc\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\nc\n"), r##"{"block": "x", "insertbefore": "(?m)^b\\nc"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\nc\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n# END ANSIBLE MANAGED BLOCK\nold\n# BEGIN ANSIBLE MANAGED BLOCK\nb\n"), r##"{"block": "x"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\nb\n"), r##"{"block": "x"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (None, r##"{"block": "x", "create": true}"##, Some(b"# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "File created"}"##),
    (None, r##"{"block": "x"}"##, None, r##"{"changed": false, "msg": "Path PATH does not exist !", "rc": 257}"##),
    (None, r##"{"state": "absent", "create": true}"##, None, r##"{"changed": false, "msg": "File PATH not present"}"##),
    (None, r##"{"state": "absent"}"##, None, r##"{"changed": false, "msg": "Path PATH does not exist !", "rc": 257}"##),
    (Some(b"a\r\nb\r\n"), r##"{"block": "x"}"##, Some(b"a\r\nb\r\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\rb\r"), r##"{"block": "x", "insertafter": "^a"}"##, Some(b"a\r\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\r"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x\n"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x\n\n"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "$(id) 'q' \"d\" \\\\ `x`"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\n$(id) 'q' \"d\" \\\\ `x`\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x", "insertafter": "a", "insertbefore": "b"}"##, Some(b"a\nb\n"), r##"{"changed": false, "msg": "parameters are mutually exclusive: insertbefore|insertafter"}"##),
    (Some(b"caf\xe9\n\xff\n"), r##"{"block": "x", "insertafter": "^caf"}"##, Some(b"caf\xe9\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\xff\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x", "marker": "# {mark} \\1 x", "marker_begin": "B\\\\E"}"##, Some(b"a\nb\n# B\\E \\1 x\nx\n# END \\1 x\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x", "insertafter": "BOF"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x", "insertbefore": "EOF"}"##, Some(b"a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"block": "x", "insertbefore": "BOF"}"##, Some(b"a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"), r##"{"changed": true, "msg": "Block inserted"}"##),
    (Some(b"a\nb\n"), r##"{"block": "x", "validate": "true"}"##, Some(b"a\nb\n"), r##"{"changed": false, "msg": "validate must contain %s: true"}"##),
    ];

    #[test]
    fn behaves_like_ansible_on_recorded_cases() {
        for (i, (before, args, after, expected)) in ANSIBLE_CASES.iter().enumerate() {
            check_against_ansible(&BlockInFile, i, *before, args, *after, expected);
        }
    }

    #[test]
    fn first_run_changes_second_is_ok_check_mode_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("conf");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"block": "x=1\ny=2", "insertbefore": "BOF"}"#;
        let expected = "# BEGIN ANSIBLE MANAGED BLOCK\nx=1\ny=2\n# END ANSIBLE MANAGED BLOCK\na\n";

        let checked = run(&BlockInFile, p, args, true, true).expect("runs");
        assert!(checked.changed);
        assert_eq!(checked.msg.as_deref(), Some("Block inserted"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\n");
        assert_eq!(checked.diffs[0].before, "a\n");
        assert_eq!(checked.diffs[0].after, expected);

        let first = run(&BlockInFile, p, args, false, false).expect("runs");
        assert!(first.changed);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), expected);
        let second = run(&BlockInFile, p, args, false, false).expect("runs");
        assert!(!second.changed);
        assert_eq!(second.msg.as_deref(), Some(""));

        let removed = run(&BlockInFile, p, r#"{"state": "absent"}"#, false, false).expect("runs");
        assert_eq!(removed.msg.as_deref(), Some("Block removed"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\n");
    }

    #[test]
    fn created_file_gets_mode_and_backup_only_for_existing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub dir/new 'file'");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"block": "x", "create": true, "mode": "0600", "backup": true}"#;
        let checked = run(&BlockInFile, p, args, true, false).expect("runs");
        assert!(checked.changed);
        assert_eq!(checked.msg.as_deref(), Some("File created"));
        assert!(!path.exists());
        let out = run(&BlockInFile, p, args, false, false).expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("File created and ownership, perms or SE linux context changed")
        );
        assert_eq!(out.result.get("backup_file"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let out = run(
            &BlockInFile,
            p,
            r#"{"block": "y", "backup": true}"#,
            false,
            false,
        )
        .expect("runs");
        let backup = out
            .result
            .get("backup_file")
            .and_then(Value::as_str)
            .expect("backup");
        assert_eq!(
            std::fs::read_to_string(backup).expect("backup"),
            "# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"
        );
    }

    #[test]
    fn hostile_block_and_markers_arrive_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("$(touch pwned) `id`");
        std::fs::write(&path, "keep \\ 'this' \"too\"\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let block = "echo \"$(id)\" '`x`' \\n \\\\";
        let args = serde_json::json!({"block": block, "marker": "; {mark} $(managed)"}).to_string();
        assert!(
            run(&BlockInFile, p, &args, false, false)
                .expect("runs")
                .changed
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("keep \\ 'this' \"too\"\n; BEGIN $(managed)\n{block}\n; END $(managed)\n")
        );
        assert!(!dir.path().join("pwned").exists());
        assert!(
            !run(&BlockInFile, p, &args, false, false)
                .expect("runs")
                .changed
        );
    }

    #[test]
    fn end_marker_without_final_newline_is_still_found() {
        let spec = BlockSpec {
            begin: "# BEGIN",
            end: "# END",
            block: None,
            insert: Insert::Eof,
            multiline: false,
            prepend_newline: false,
            append_newline: false,
        };
        let text = "a\n# BEGIN\nold\n# END";
        assert_eq!(apply_block(Some(text), &spec).expect("runs"), "a\n");
        // Nothing to remove: the file stays as it is (no newline added).
        assert_eq!(apply_block(Some("a"), &spec).expect("runs"), "a");
        let spec = BlockSpec {
            block: Some("new"),
            ..spec
        };
        assert_eq!(
            apply_block(Some("a\r\n# BEGIN\r\nold\r\n# END\r\nz"), &spec).expect("runs"),
            "a\r\n# BEGIN\nnew\n# END\nz"
        );
    }

    #[test]
    fn missing_file_and_directory_fail_as_ansible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let out = run(&BlockInFile, d, r#"{"block": "x"}"#, false, false).expect("runs");
        assert_eq!(out.msg, Some(format!("Path {d} is a directory !")));
        assert_eq!(out.result.get("rc"), Some(&Value::from(256)));
        let m = format!("{d}/missing");
        let out = run(&BlockInFile, &m, r#"{"block": "x"}"#, false, false).expect("runs");
        assert!(out.failed);
        assert_eq!(out.msg, Some(format!("Path {m} does not exist !")));
    }

    #[test]
    fn round_trips_one_exec_when_ok_one_exec_and_a_put_when_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let (changed, execs, puts) = count_round_trips(&BlockInFile, p, r#"{"block": "x"}"#);
        assert!(changed.changed);
        assert_eq!((execs, puts), (1, 1));
        let (ok, execs, puts) = count_round_trips(&BlockInFile, p, r#"{"block": "x"}"#);
        assert!(!ok.changed);
        assert_eq!((execs, puts), (1, 0));
    }
}
