//! The `lineinfile` module: make sure one line is in a file (or that matching lines are not),
//! computed on the controller from the file's content and written back atomically.
//!
//! The text logic (`present`, `absent`) is a pure function of the old content and follows
//! Ansible's `lineinfile.py` step by step: the last match wins unless `firstmatch`; with no
//! match the line goes after/before the `insertafter`/`insertbefore` line or at the end;
//! `backrefs` without a match changes nothing; an exact copy of the line anywhere counts as
//! present. Lines are split after `\n` only, as Python's `readlines` does, and compared with
//! their trailing `\r`/`\n` stripped.
//!
//! Deviation, on purpose: when `insertafter` matches the last line and that line has no
//! final newline, Ansible glues the new line onto it (`a` + `x` gives `ax\n`); here the
//! missing newline is added first (`a\nx\n`), as Ansible itself does when appending at EOF.

use serde::Deserialize;

use super::common::{AttrPlan, Validate, WantAttrs};
use super::pyre;
use super::textfile::{self, WriteOptions};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `lineinfile`.
pub struct LineInFile;

#[derive(Debug, Deserialize)]
struct LineInFileArgs {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: String,
    state: Option<State>,
    #[serde(alias = "regex")]
    regexp: Option<String>,
    search_string: Option<String>,
    #[serde(alias = "value")]
    line: Option<String>,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    backrefs: Option<bool>,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    firstmatch: bool,
    validate: Option<String>,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    /// Accepted for compatibility: every write here is atomic already.
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
    /// SELinux contexts: accepted and ignored (targets here do not run SELinux labelling).
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

/// How a line is recognised.
#[derive(Debug)]
pub enum Matcher<'a> {
    /// `regexp`: searched anywhere in the line (newline included, as Python sees it).
    Regex(&'a fancy_regex::Regex),
    /// `search_string`: a plain substring.
    Search(&'a str),
}

/// Where a line that matched nothing goes.
#[derive(Debug)]
pub enum Insert<'a> {
    /// `insertafter: EOF` (the default).
    Eof,
    /// `insertbefore: BOF` or `insertafter: BOF`.
    Bof,
    /// After the last (or, with `firstmatch`, first) line matching `insertafter`.
    After(&'a fancy_regex::Regex),
    /// Before the last (or first) line matching `insertbefore`.
    Before(&'a fancy_regex::Regex),
}

/// Everything `state=present` needs besides the content.
#[derive(Debug)]
pub struct PresentSpec<'a> {
    pub line: &'a str,
    pub matcher: Option<Matcher<'a>>,
    pub insert: Insert<'a>,
    pub backrefs: bool,
    pub firstmatch: bool,
}

/// The new content and Ansible's message for it (`""` when nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub content: String,
    pub msg: String,
    pub changed: bool,
}

/// Python's `readlines()`: split after every `\n`, keeping it.
fn split_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

fn strip_eol(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn search(re: &fancy_regex::Regex, text: &str) -> Result<bool, String> {
    re.is_match(text).map_err(|e| e.to_string())
}

/// `state=present`.
pub fn present(text: &str, spec: &PresentSpec<'_>) -> Result<Edit, String> {
    let mut lines = split_lines(text);
    let line = spec.line;
    // Where the line (or what `regexp`/`search_string` found) is, and where to insert it.
    let mut found_at: Option<usize> = None;
    let mut insert_at: Option<usize> = None;
    let mut matched = false;

    match &spec.matcher {
        Some(Matcher::Regex(re)) => {
            for (i, cur) in lines.iter().enumerate() {
                if search(re, cur)? {
                    found_at = Some(i);
                    matched = true;
                    if spec.firstmatch {
                        break;
                    }
                }
            }
        }
        Some(Matcher::Search(needle)) => {
            for (i, cur) in lines.iter().enumerate() {
                if cur.contains(needle) {
                    found_at = Some(i);
                    matched = true;
                    if spec.firstmatch {
                        break;
                    }
                }
            }
        }
        None => {}
    }

    if !matched {
        let insert_re = match spec.insert {
            Insert::After(re) | Insert::Before(re) => Some(re),
            Insert::Eof | Insert::Bof => None,
        };
        for (i, cur) in lines.iter().enumerate() {
            if line == strip_eol(cur) {
                found_at = Some(i);
            } else if let Some(re) = insert_re {
                if search(re, cur)? {
                    insert_at = Some(match spec.insert {
                        Insert::After(_) => i + 1,
                        _ => i,
                    });
                    if spec.firstmatch {
                        break;
                    }
                }
            }
        }
    }

    let new_line = format!("{line}\n");
    let mut msg = "";
    if let Some(at) = found_at {
        let mut replacement = match (&spec.matcher, spec.backrefs && matched) {
            (Some(Matcher::Regex(re)), true) => {
                let template = pyre::Template::parse(line, re)?;
                match re.captures(&lines[at]).map_err(|e| e.to_string())? {
                    Some(caps) => template.expand(&caps),
                    None => line.to_string(),
                }
            }
            _ => line.to_string(),
        };
        if !replacement.ends_with('\n') {
            replacement.push('\n');
        }
        if lines[at] != replacement {
            lines[at] = replacement;
            msg = "line replaced";
        }
    } else if spec.backrefs {
        // Without a match there is nothing to fill the backreferences with: leave the file.
    } else if matches!(spec.insert, Insert::Bof) {
        lines.insert(0, new_line);
        msg = "line added";
    } else if matches!(spec.insert, Insert::Eof) || insert_at.is_none() {
        ensure_final_newline(&mut lines);
        lines.push(new_line);
        msg = "line added";
    } else if let (Insert::After(_), Some(at)) = (&spec.insert, insert_at) {
        if at == lines.len() {
            if strip_eol(&lines[at - 1]) != line {
                // Ansible appends without checking the newline here (see the module doc).
                ensure_final_newline(&mut lines);
                lines.push(new_line);
                msg = "line added";
            }
        } else if strip_eol(&lines[at]) != line {
            lines.insert(at, new_line);
            msg = "line added";
        }
    } else if let Some(at) = insert_at {
        lines.insert(at, new_line);
        msg = "line added";
    }

    Ok(Edit {
        content: lines.concat(),
        changed: !msg.is_empty(),
        msg: msg.to_string(),
    })
}

/// A non-empty last line without a newline gets one before something is added after it.
fn ensure_final_newline(lines: &mut Vec<String>) {
    if let Some(last) = lines.last() {
        if !last.ends_with(['\n', '\r']) {
            lines.push("\n".into());
        }
    }
}

/// How `state=absent` recognises the lines to remove.
#[derive(Debug)]
pub enum AbsentMatcher<'a> {
    Regex(&'a fancy_regex::Regex),
    Search(&'a str),
    /// The exact line (trailing `\r`/`\n` ignored).
    Line(&'a str),
}

/// `state=absent`: the content without the matching lines, and how many were removed.
pub fn absent(text: &str, matcher: &AbsentMatcher<'_>) -> Result<(String, usize), String> {
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0;
    for cur in text.split_inclusive('\n') {
        let hit = match matcher {
            AbsentMatcher::Regex(re) => search(re, cur)?,
            AbsentMatcher::Search(needle) => cur.contains(needle),
            AbsentMatcher::Line(line) => *line == strip_eol(cur),
        };
        if hit {
            removed += 1;
        } else {
            kept.push_str(cur);
        }
    }
    Ok((kept, removed))
}

fn compile(pattern: &str) -> Result<fancy_regex::Regex, ModuleError> {
    pyre::compile(pattern, false, false).map_err(|e| {
        ModuleError::Args(format!(
            "Unable to compile regular expression '{pattern}': {e}"
        ))
    })
}

fn mutually_exclusive(pairs: &[(&str, bool, &str, bool)]) -> Result<(), ModuleError> {
    for (a, has_a, b, has_b) in pairs {
        if *has_a && *has_b {
            return Err(ModuleError::Args(format!(
                "parameters are mutually exclusive: {a}|{b}"
            )));
        }
    }
    Ok(())
}

impl Module for LineInFile {
    fn name(&self) -> &'static str {
        "lineinfile"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<LineInFileArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw_args: &Map) -> Result<Outcome, ModuleError> {
        let item = Item::prepare(raw_args)?;
        let file = match textfile::read(ctx, &item.a.path)? {
            Ok(file) => file,
            Err(failed) => return Ok(failed),
        };
        let edit = match item.edit(&file)? {
            Ok(edit) => edit,
            Err(early) => return Ok(early),
        };
        let mut backup = String::new();
        if edit.content_changed() && !ctx.check {
            let opts = WriteOptions {
                backup: item.a.backup,
                validate: item.validate.as_ref(),
                want: &item.want,
            };
            match textfile::write(ctx, &file, &pyre::encode(&edit.after), &opts)? {
                Ok(path) => backup = path.unwrap_or_default(),
                Err(e) => return Ok(Outcome::failed(e)),
            }
        }
        let plan = match textfile::settle_attrs(ctx, &file, &item.want, edit.content_changed())? {
            Ok(plan) => plan,
            Err(e) => return Ok(Outcome::failed(e)),
        };
        Ok(item.outcome(&edit, &plan, backup, ctx.diff))
    }

    fn run_many(
        &self,
        ctx: &mut Ctx<'_>,
        items: &[Map],
    ) -> Option<Vec<Result<Outcome, ModuleError>>> {
        run_batch(self, ctx, items)
    }
}

/// One item's arguments, checked, with its patterns compiled.
struct Item {
    a: LineInFileArgs,
    state: State,
    backrefs: bool,
    want: WantAttrs,
    validate: Option<Validate>,
    warnings: Vec<Value>,
    regexp: Option<fancy_regex::Regex>,
    insert_re: Option<fancy_regex::Regex>,
}

/// What an item does to the content it finds.
struct ItemEdit {
    before: String,
    after: String,
    msg: String,
    /// `state=absent`: how many lines were removed.
    found: Option<usize>,
}

impl ItemEdit {
    fn content_changed(&self) -> bool {
        self.after != self.before
    }
}

impl Item {
    fn prepare(raw_args: &Map) -> Result<Item, ModuleError> {
        let a: LineInFileArgs = args::parse("lineinfile", raw_args)?;
        mutually_exclusive(&[
            (
                "insertbefore",
                a.insertbefore.is_some(),
                "insertafter",
                a.insertafter.is_some(),
            ),
            (
                "regexp",
                a.regexp.is_some(),
                "search_string",
                a.search_string.is_some(),
            ),
            (
                "backrefs",
                a.backrefs.is_some(),
                "search_string",
                a.search_string.is_some(),
            ),
        ])?;
        let state = a.state.unwrap_or(State::Present);
        let backrefs = a.backrefs.unwrap_or(false);
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let validate = a
            .validate
            .as_deref()
            .map(Validate::parse)
            .transpose()
            .map_err(ModuleError::Args)?;

        let mut warnings = Vec::new();
        if a.regexp.as_deref() == Some("") || a.search_string.as_deref() == Some("") {
            let (name, extra) = if a.regexp.as_deref() == Some("") {
                ("regular expression", " If this is desired, use '^' to match every line in the file and avoid this warning.")
            } else {
                ("search string", "")
            };
            warnings.push(Value::from(format!(
                "The {name} is an empty string, which will match every line in the file. This may have unintended consequences, such as replacing the last line in the file rather than appending.{extra}"
            )));
        }
        match state {
            State::Present => {
                if backrefs && a.regexp.is_none() {
                    return Err(ModuleError::Args(
                        "regexp is required with backrefs=true".into(),
                    ));
                }
                if a.line.is_none() {
                    return Err(ModuleError::Args(
                        "line is required with state=present".into(),
                    ));
                }
            }
            State::Absent => {
                if a.regexp.is_none() && a.search_string.is_none() && a.line.is_none() {
                    return Err(ModuleError::Args(
                        "one of line, search_string, or regexp is required with state=absent"
                            .into(),
                    ));
                }
            }
        }
        let regexp = a.regexp.as_deref().map(compile).transpose()?;
        let insert_re = match (&a.insertafter, &a.insertbefore) {
            (Some(after), _) if !matches!(after.as_str(), "" | "BOF" | "EOF") => {
                Some(compile(after)?)
            }
            (None, Some(before)) if !matches!(before.as_str(), "" | "BOF") => {
                Some(compile(before)?)
            }
            _ => None,
        };
        Ok(Item {
            a,
            state,
            backrefs,
            want,
            validate,
            warnings,
            regexp,
            insert_re,
        })
    }

    /// The edit this item makes to `file` as it is; `Ok(Err(outcome))`: the item ends here
    /// (no file and nothing to create, or content that cannot be edited).
    fn edit(&self, file: &textfile::TextFile) -> Result<Result<ItemEdit, Outcome>, ModuleError> {
        let a = &self.a;
        if !file.exists() {
            match self.state {
                State::Absent => return Ok(Err(Outcome::ok().with_msg("file not present"))),
                State::Present if !a.create => {
                    return Ok(Err(Outcome::failed(format!(
                        "Destination {} does not exist !",
                        a.path
                    ))
                    .with("rc", 257)))
                }
                State::Present => {}
            }
        }
        let Some(before) = pyre::decode(&file.content) else {
            return Ok(Err(textfile::undecodable(&a.path)));
        };
        let (after, msg, found) = match self.state {
            State::Present => {
                let insert = match (&a.insertafter, &a.insertbefore, &self.insert_re) {
                    (_, _, Some(re)) if a.insertafter.is_some() => Insert::After(re),
                    (_, _, Some(re)) => Insert::Before(re),
                    (Some(after), _, None) if after == "BOF" => Insert::Bof,
                    (None, Some(before), None) if before == "BOF" => Insert::Bof,
                    _ => Insert::Eof,
                };
                let matcher = match (&self.regexp, &a.search_string) {
                    (Some(re), _) => Some(Matcher::Regex(re)),
                    (None, Some(s)) => Some(Matcher::Search(s)),
                    (None, None) => None,
                };
                let spec = PresentSpec {
                    line: a.line.as_deref().unwrap_or_default(),
                    matcher,
                    insert,
                    backrefs: self.backrefs,
                    firstmatch: a.firstmatch,
                };
                let edit = present(&before, &spec).map_err(ModuleError::Failed)?;
                (edit.content, edit.msg, None)
            }
            State::Absent => {
                let matcher = match (&self.regexp, &a.search_string, &a.line) {
                    (Some(re), _, _) => AbsentMatcher::Regex(re),
                    (None, Some(s), _) => AbsentMatcher::Search(s),
                    (None, None, line) => AbsentMatcher::Line(line.as_deref().unwrap_or_default()),
                };
                let (content, removed) = absent(&before, &matcher).map_err(ModuleError::Failed)?;
                let msg = if removed > 0 {
                    format!("{removed} line(s) removed")
                } else {
                    String::new()
                };
                (content, msg, Some(removed))
            }
        };
        Ok(Ok(ItemEdit {
            before: before.into_owned(),
            after,
            msg,
            found,
        }))
    }

    /// The result, once the content is written (`backup`: the backup's path, or empty) and
    /// `plan` holds the owner/group/mode changes.
    fn outcome(&self, edit: &ItemEdit, plan: &AttrPlan, backup: String, diff: bool) -> Outcome {
        let content_changed = edit.content_changed();
        let mut msg = edit.msg.clone();
        let mut outcome = Outcome::changed(content_changed);
        if diff && content_changed {
            outcome.diffs.push(textfile::content_diff(
                &self.a.path,
                &edit.before,
                &edit.after,
            ));
        }
        if !plan.is_empty() {
            msg = textfile::attrs_message(&msg, content_changed);
            outcome.changed = true;
            if diff {
                outcome
                    .diffs
                    .extend(textfile::attrs_diff(&self.a.path, plan));
            }
        }
        outcome.msg = Some(msg);
        outcome = outcome.with("backup", backup);
        if let Some(found) = edit.found {
            outcome = outcome.with("found", found);
        }
        if !self.warnings.is_empty() {
            outcome = outcome.with("warnings", self.warnings.clone());
        }
        outcome
    }
}

/// [`Module::run_many`] for `lineinfile`: items that edit one file with the same file-level
/// settings (`path`, `create`, `mode`; no `owner`/`group`, `backup` or `validate`) read it
/// once, apply their edits one after the other on the controller, each seeing the content
/// and mode the items before it left (none in check mode, where nothing is written), and
/// write it once: one exec and one transfer (plus one exec for a mode-only change) instead of
/// that per item. If the write fails, nothing changed on the target (writes are atomic), and
/// the items run one by one to fail as they would have.
fn run_batch(
    module: &LineInFile,
    ctx: &mut Ctx<'_>,
    items: &[Map],
) -> Option<Vec<Result<Outcome, ModuleError>>> {
    if items.len() < 2 {
        return None;
    }
    let prepared: Vec<Item> = items
        .iter()
        .map(|args| Item::prepare(args).ok())
        .collect::<Option<_>>()?;
    let first = &prepared[0].a;
    let same_file = prepared.iter().all(|item| {
        let a = &item.a;
        a.path == first.path
            && a.create == first.create
            && a.mode == first.mode
            && a.owner.is_none()
            && a.group.is_none()
            && !a.backup
            && a.validate.is_none()
    });
    if !same_file {
        return None;
    }
    let original = match textfile::read(ctx, &first.path) {
        Ok(Ok(file)) => file,
        // Nothing an item does can change what reading finds: the same for each item.
        Ok(Err(failed)) => return Some(prepared.iter().map(|_| Ok(failed.clone())).collect()),
        Err(e) => return Some(vec![Err(e)]),
    };
    let want = &prepared[0].want;
    let mut file = original.clone();
    let mut results = Vec::with_capacity(items.len());
    let mut content_written = false;
    let mut attrs_applied: Option<AttrPlan> = None;
    for item in &prepared {
        let edit = match item.edit(&file) {
            Ok(Ok(edit)) => edit,
            Ok(Err(early)) => {
                results.push(Ok(early));
                continue;
            }
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let changed = edit.content_changed();
        // settle_attrs's plan, against the file as this item finds it.
        let plan = if ctx.check && !file.exists() {
            AttrPlan::default()
        } else {
            match want.plan(&file.stat, file.user.umask) {
                Ok(plan) => plan,
                // Bad modes fail every item alike, as alone: one by one.
                Err(_) => return None,
            }
        };
        results.push(Ok(item.outcome(&edit, &plan, String::new(), ctx.diff)));
        if ctx.check {
            continue;
        }
        // What the target would hold after this item, for the next one.
        if changed {
            let perm = match &want.mode {
                Some(spec) => spec.resolve(file.stat.perm, false, file.user.umask).ok()?,
                None => file.stat.perm,
            };
            file.kind = textfile::Kind::File;
            file.stat.perm = perm;
            file.content = pyre::encode(&edit.after);
            content_written = true;
        } else if !plan.is_empty() {
            if let Some((_, bits)) = plan.mode {
                file.stat.perm = bits;
            }
            attrs_applied.get_or_insert(plan);
        }
    }
    if content_written {
        let opts = WriteOptions {
            backup: false,
            validate: None,
            want,
        };
        match textfile::write(ctx, &original, &file.content, &opts) {
            Ok(Ok(_)) => {}
            // Nothing was written: as one by one, where each item meets the same refusal.
            Ok(Err(_)) => return Some(one_by_one(module, ctx, items)),
            Err(e) => return Some(vec![Err(e)]),
        }
    } else if attrs_applied.is_some() {
        match textfile::settle_attrs(ctx, &original, want, false) {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Some(one_by_one(module, ctx, items)),
            Err(e) => return Some(vec![Err(e)]),
        }
    }
    Some(results)
}

/// Each item through `run`, in order, stopping after a lost host.
fn one_by_one(
    module: &LineInFile,
    ctx: &mut Ctx<'_>,
    items: &[Map],
) -> Vec<Result<Outcome, ModuleError>> {
    let mut results = Vec::with_capacity(items.len());
    for args in items {
        let result = module.run(ctx, args);
        let gone = matches!(result, Err(ModuleError::Host(_)));
        results.push(result);
        if gone {
            break;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::textfile::testkit::{
        check_against_ansible, count_round_trips, run, RecordedCase,
    };

    /// Recorded from `ansible localhost -c local -m lineinfile -a '{json}'` (ansible-core
    /// 2.19): content before, arguments, content after, result.
    #[rustfmt::skip]
    const ANSIBLE_CASES: &[RecordedCase] = &[
    (Some(b"a\nb\n"), r#"{"line": "c"}"#, Some(b"a\nb\nc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb"), r#"{"line": "c"}"#, Some(b"a\nb\nc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b""), r#"{"line": "c"}"#, Some(b"c\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"line": "b"}"#, Some(b"a\nb\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"a\nb\r\n"), r#"{"line": "b"}"#, Some(b"a\nb\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"k=1\nk=2\n"), r#"{"regexp": "^k=", "line": "k=3"}"#, Some(b"k=1\nk=3\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"k=1\nk=2\n"), r#"{"regexp": "^k=", "line": "k=3", "firstmatch": true}"#, Some(b"k=3\nk=2\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"k=1\n"), r#"{"regexp": "^x", "line": "x=1"}"#, Some(b"k=1\nx=1\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\nc\n"), r#"{"regexp": "^x", "insertafter": "^a", "line": "x"}"#, Some(b"a\nx\nb\nc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\na\n"), r#"{"insertafter": "^a", "line": "x"}"#, Some(b"a\nb\na\nx\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\na\n"), r#"{"insertafter": "^a", "line": "x", "firstmatch": true}"#, Some(b"a\nx\nb\na\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\nc\n"), r#"{"insertbefore": "^b", "line": "x"}"#, Some(b"a\nx\nb\nc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"insertbefore": "BOF", "line": "x"}"#, Some(b"x\na\nb\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"insertafter": "BOF", "line": "x"}"#, Some(b"x\na\nb\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"insertafter": "^zzz", "line": "x"}"#, Some(b"a\nb\nx\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"insertbefore": "^zzz", "line": "x"}"#, Some(b"a\nb\nx\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nx\nb\n"), r#"{"insertafter": "^a", "line": "x"}"#, Some(b"a\nx\nb\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"k=1\n"), r#"{"regexp": "^(?P<key>k)=(\\d)", "line": "\\g<key>:\\2", "backrefs": true}"#, Some(b"k:1\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"k=1\n"), r#"{"regexp": "^z", "line": "x", "backrefs": true}"#, Some(b"k=1\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"a\nb\n"), r#"{"search_string": "b", "line": "c"}"#, Some(b"a\nc\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\nfoo bar\n"), r#"{"search_string": " bar", "line": "x"}"#, Some(b"a\nx\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\nb\na\n"), r#"{"line": "a", "state": "absent"}"#, Some(b"b\n"), r#"{"backup": "", "changed": true, "found": 2, "msg": "2 line(s) removed"}"#),
    (Some(b"a\nb\nab\n"), r#"{"regexp": "^a", "state": "absent"}"#, Some(b"b\n"), r#"{"backup": "", "changed": true, "found": 2, "msg": "2 line(s) removed"}"#),
    (Some(b"a\nb\nab\n"), r#"{"search_string": "b", "state": "absent"}"#, Some(b"a\n"), r#"{"backup": "", "changed": true, "found": 2, "msg": "2 line(s) removed"}"#),
    (Some(b"a\nb\n"), r#"{"insertafter": "EOF", "line": "x"}"#, Some(b"a\nb\nx\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"regexp": "^b$", "line": "c"}"#, Some(b"a\nc\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"path=/usr/bin\n"), r#"{"regexp": "^path=(.*)$", "line": "path=\\1:/opt", "backrefs": true}"#, Some(b"path=/usr/bin:/opt\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"x\n"), r#"{"regexp": "^(x)$", "line": "\\1 $(whoami) \\\\ \"q\" 's' `id`", "backrefs": true}"#, Some(b"x $(whoami) \\ \"q\" 's' `id`\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\r\nb\r\n"), r#"{"line": "c"}"#, Some(b"a\r\nb\r\nc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\r"), r#"{"line": "c"}"#, Some(b"a\rc\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"regexp": "", "line": "x"}"#, Some(b"a\nx\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\nb\na\n"), r#"{"insertbefore": "^a", "line": "x", "firstmatch": true}"#, Some(b"x\na\nb\na\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\na\n"), r#"{"insertbefore": "^a", "line": "x"}"#, Some(b"a\nb\nx\na\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"insertafter": "^b", "line": "x"}"#, Some(b"a\nb\nx\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\nx\n"), r#"{"insertafter": "^b", "line": "x"}"#, Some(b"a\nb\nx\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"caf\xe9\nb\n"), r#"{"regexp": "^b", "line": "c"}"#, Some(b"caf\xe9\nc\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"k = 1 \n"), r#"{"regexp": "^k\\s*=", "line": "k = 2"}"#, Some(b"k = 2\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"ab\n"), r#"{"regexp": "^(a)(x)?b", "line": "\\1\\2-", "backrefs": true}"#, Some(b"a-\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\nb\n"), r#"{"line": "zz", "state": "absent"}"#, Some(b"a\nb\n"), r#"{"backup": "", "changed": false, "found": 0, "msg": ""}"#),
    (None, r#"{"line": "x", "state": "absent"}"#, None, r#"{"changed": false, "msg": "file not present"}"#),
    (None, r#"{"line": "x", "create": true}"#, Some(b"x\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"a\nb\n"), r#"{"regexp": "^(a)", "line": "\\1\\1", "backrefs": true}"#, Some(b"aa\nb\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"a\nb\n"), r#"{"regexp": "^a", "line": "a"}"#, Some(b"a\nb\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"a\nb\na\n"), r#"{"insertafter": "^a", "insertbefore": "^b", "line": "x"}"#, Some(b"a\nb\na\n"), r#"{"changed": false, "msg": "parameters are mutually exclusive: insertbefore|insertafter"}"#),
    (Some(b"a\nb\n"), r#"{"regexp": "^a", "search_string": "a", "line": "x"}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "parameters are mutually exclusive: regexp|search_string"}"#),
    (Some(b"a\nb\n"), r#"{"backrefs": true, "line": "x"}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "regexp is required with backrefs=true"}"#),
    (Some(b"a\nb\n"), r#"{}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "line is required with state=present"}"#),
    (Some(b"a\nb\n"), r#"{"state": "absent"}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "one of line, search_string, or regexp is required with state=absent"}"#),
    (Some(b"a\nb\n"), r#"{"line": "x", "validate": "true"}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "validate must contain %s: true"}"#),
    (Some(b"a\nb\n"), r#"{"line": "x", "validate": "false %s"}"#, Some(b"a\nb\n"), r#"{"changed": false, "msg": "failed to validate: rc:1 error:"}"#),
    (Some(b"a  b\n"), r#"{"regexp": "^a\\s+b$", "line": "ab"}"#, Some(b"ab\n"), r#"{"backup": "", "changed": true, "msg": "line replaced"}"#),
    (Some(b"[section]\nkey=1\n"), r#"{"regexp": "^\\[section\\]", "insertafter": "x", "line": "[section]"}"#, Some(b"[section]\nkey=1\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    (Some(b"a\nb\n"), r#"{"insertbefore": "^a", "line": "x"}"#, Some(b"x\na\nb\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"b\n"), r#"{"insertbefore": "^b", "line": "x"}"#, Some(b"x\nb\n"), r#"{"backup": "", "changed": true, "msg": "line added"}"#),
    (Some(b"x\nb\n"), r#"{"insertbefore": "^b", "line": "x"}"#, Some(b"x\nb\n"), r#"{"backup": "", "changed": false, "msg": ""}"#),
    ];

    /// Runs `items` (JSON; `{}` stands for the scratch directory) one by one in one scratch
    /// directory and through `run_many` in another, both prepared by `setup`; checks that
    /// outcomes, file contents and modes are the same. Returns the batch's (execs, puts).
    fn same_as_one_by_one(
        setup: &dyn Fn(&std::path::Path),
        items: &[&str],
        check: bool,
        diff: bool,
    ) -> (usize, usize) {
        use crate::files::testkit::{run_on, CountingHost};
        let (one, many) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        setup(one.path());
        setup(many.path());
        let root = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
        let args = |dir: &std::path::Path| -> Vec<Map> {
            items
                .iter()
                .map(
                    |item| match serde_json::from_str(&item.replace("{}", &root(dir))) {
                        Ok(Value::Object(map)) => map,
                        _ => panic!("an object"),
                    },
                )
                .collect()
        };
        let shown = |o: &Result<Outcome, ModuleError>, dir: &std::path::Path| -> String {
            let text = match o {
                Ok(o) => format!("{:?} {:?}", o.to_result(), o.diffs),
                Err(e) => format!("error {e}"),
            };
            text.replace(&root(dir), "ROOT")
        };
        let mut local = crate::local::LocalHost::new("one");
        let one_by_one: Vec<String> = args(one.path())
            .iter()
            .map(|a| shown(&run_on(&mut local, &LineInFile, a, check, diff), one.path()))
            .collect();
        let mut counting = CountingHost::new();
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut counting,
            check,
            diff,
            facts: &facts,
        };
        let batched: Vec<String> = LineInFile
            .run_many(&mut ctx, &args(many.path()))
            .expect("batched")
            .iter()
            .map(|o| shown(o, many.path()))
            .collect();
        assert_eq!(batched, one_by_one);
        let state = |dir: &std::path::Path| {
            let mut out: Vec<(String, Vec<u8>, u32)> = std::fs::read_dir(dir)
                .expect("ls")
                .map(|e| {
                    let path = e.expect("entry").path();
                    let content = std::fs::read(&path).unwrap_or_default();
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    (name.unwrap_or_default(), content, mode_of(&path))
                })
                .collect();
            out.sort();
            out
        };
        assert_eq!(state(many.path()), state(one.path()));
        (counting.execs, counting.puts)
    }

    #[test]
    fn a_batch_of_edits_to_one_file_matches_one_by_one_in_one_read_and_one_write() {
        let items = [
            r#"{"path": "{}/60-app.conf", "regexp": "^vm\\.swappiness\\s*=", "line": "vm.swappiness = 10", "create": true, "mode": "0644"}"#,
            r#"{"path": "{}/60-app.conf", "regexp": "^net\\.core\\.somaxconn\\s*=", "line": "net.core.somaxconn = 1024", "create": true, "mode": "0644"}"#,
            r#"{"path": "{}/60-app.conf", "regexp": "^vm\\.swappiness\\s*=", "line": "vm.swappiness = 20", "create": true, "mode": "0644"}"#,
            r#"{"path": "{}/60-app.conf", "line": "net.core.somaxconn = 1024", "state": "absent", "create": true, "mode": "0644"}"#,
            r#"{"path": "{}/60-app.conf", "line": "fs.file-max = 1", "insertbefore": "BOF", "create": true, "mode": "0644"}"#,
        ];
        let nothing = |_: &std::path::Path| {};
        // Created: one read, one write (no parent to make).
        assert_eq!(same_as_one_by_one(&nothing, &items, false, true), (1, 1));
        assert_eq!(same_as_one_by_one(&nothing, &items, true, true), (1, 0));
        let existing = |dir: &std::path::Path| {
            let path = dir.join("60-app.conf");
            std::fs::write(&path, "fs.file-max = 1\nvm.swappiness = 20\n").expect("write");
            let mode =
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
            std::fs::set_permissions(&path, mode).expect("chmod");
        };
        // Only the mode changes (first item), then content: one read, one write.
        assert_eq!(same_as_one_by_one(&existing, &items, false, true), (1, 1));
        assert_eq!(same_as_one_by_one(&existing, &items, true, false), (1, 0));
        // Converged but for the mode: one read, one exec for the mode.
        let converged = [items[2], items[4]];
        assert_eq!(
            same_as_one_by_one(&existing, &converged, false, true),
            (2, 0)
        );
    }

    #[test]
    fn a_batch_that_cannot_write_fails_each_item_as_alone() {
        let items = [
            r#"{"path": "{}/missing", "line": "a"}"#,
            r#"{"path": "{}/missing", "line": "b", "state": "absent"}"#,
        ];
        same_as_one_by_one(&|_| {}, &items, false, true);
        // The parent is a file: the write fails, and so does each item one by one.
        let blocked = [
            r#"{"path": "{}/file/x", "line": "a", "create": true}"#,
            r#"{"path": "{}/file/x", "line": "b", "create": true}"#,
        ];
        let file = |dir: &std::path::Path| std::fs::write(dir.join("file"), "x").expect("file");
        same_as_one_by_one(&file, &blocked, false, true);
        // Items on different files, or with a backup, are left to the caller.
        let mut host = crate::local::LocalHost::new("t");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let map = |text: &str| match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            _ => panic!("object"),
        };
        let a = map(r#"{"path": "/tmp/a", "line": "x"}"#);
        let b = map(r#"{"path": "/tmp/b", "line": "x"}"#);
        let backup = map(r#"{"path": "/tmp/a", "line": "y", "backup": true}"#);
        assert!(LineInFile.run_many(&mut ctx, &[a.clone(), b]).is_none());
        assert!(LineInFile.run_many(&mut ctx, &[a, backup]).is_none());
    }

    #[test]
    fn behaves_like_ansible_on_recorded_cases() {
        for (i, (before, args, after, expected)) in ANSIBLE_CASES.iter().enumerate() {
            check_against_ansible(&LineInFile, i, *before, args, *after, expected);
        }
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn first_run_changes_second_is_ok_check_mode_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("conf");
        std::fs::write(&path, "a=1\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"regexp": "^b=", "line": "b=2"}"#;

        let checked = run(&LineInFile, p, args, true, true).expect("runs");
        assert!(checked.changed);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a=1\n");
        assert_eq!(checked.diffs.len(), 1);
        assert_eq!(checked.diffs[0].before, "a=1\n");
        assert_eq!(checked.diffs[0].after, "a=1\nb=2\n");
        assert_eq!(checked.diffs[0].before_header, format!("{p} (content)"));

        let first = run(&LineInFile, p, args, false, false).expect("runs");
        assert!(first.changed);
        assert_eq!(first.msg.as_deref(), Some("line added"));
        assert!(first.diffs.is_empty(), "no diff unless asked");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a=1\nb=2\n");

        let second = run(&LineInFile, p, args, false, true).expect("runs");
        assert!(!second.changed);
        assert_eq!(second.msg.as_deref(), Some(""));
        let third = run(&LineInFile, p, args, true, false).expect("runs");
        assert!(!third.changed);
    }

    #[test]
    fn hostile_paths_and_lines_arrive_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a 'b' \"c\" $(touch x) `id`\nz.conf");
        let p = path.to_str().expect("utf-8");
        let line = "say '$(rm -rf /)' \"`id`\" \\ \\n $HOME";
        let args = serde_json::json!({"line": line, "create": true}).to_string();
        let out = run(&LineInFile, p, &args, false, false).expect("runs");
        assert!(out.changed);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{line}\n")
        );
        assert!(!dir.path().join("x").exists(), "nothing was run");
        let again = run(&LineInFile, p, &args, false, false).expect("runs");
        assert!(!again.changed);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("latin1");
        std::fs::write(&path, b"caf\xe9=1\nkey=old\n\xff\xfe\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(
            &LineInFile,
            p,
            r#"{"regexp": "^key=", "line": "key=new"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.changed);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"caf\xe9=1\nkey=new\n\xff\xfe\n"
        );
        // A backreference carries the raw bytes along.
        let out = run(
            &LineInFile,
            p,
            r#"{"regexp": "^caf(.)=1", "line": "cafe\\1=2", "backrefs": true}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.changed);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"cafe\xe9=2\nkey=new\n\xff\xfe\n"
        );
    }

    #[test]
    fn missing_file_and_directory_fail_as_ansible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let m = missing.to_str().expect("utf-8");
        let out = run(&LineInFile, m, r#"{"line": "x"}"#, false, false).expect("runs");
        assert!(out.failed);
        assert_eq!(out.msg, Some(format!("Destination {m} does not exist !")));
        assert_eq!(out.result.get("rc"), Some(&Value::from(257)));

        let d = dir.path().to_str().expect("utf-8");
        let out = run(&LineInFile, d, r#"{"line": "x"}"#, false, false).expect("runs");
        assert!(out.failed);
        assert_eq!(out.msg, Some(format!("Path {d} is a directory !")));
        assert_eq!(out.result.get("rc"), Some(&Value::from(256)));

        let err = run(
            &LineInFile,
            m,
            r#"{"line": "x", "regexp": "("}"#,
            false,
            false,
        )
        .expect_err("bad regex");
        assert!(
            err.to_string()
                .starts_with("Unable to compile regular expression '(':"),
            "{err}"
        );
    }

    #[test]
    fn create_makes_parent_directories_but_not_in_check_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new/sub/file");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"line": "x", "create": true, "mode": "0640"}"#;
        let checked = run(&LineInFile, p, args, true, true).expect("runs");
        assert!(checked.changed);
        assert_eq!(checked.msg.as_deref(), Some("line added"));
        assert!(!dir.path().join("new").exists());
        let out = run(&LineInFile, p, args, false, false).expect("runs");
        assert!(out.changed);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "x\n");
        assert_eq!(mode_of(&path), 0o640);
        assert!(
            !run(&LineInFile, p, args, false, false)
                .expect("runs")
                .changed
        );
    }

    #[test]
    fn mode_is_kept_on_rewrite_and_changed_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o604))
            .expect("chmod");
        run(&LineInFile, p, r#"{"line": "b"}"#, false, false).expect("runs");
        assert_eq!(mode_of(&path), 0o604, "a rewrite keeps the mode");

        // Only the mode differs: changed, with Ansible's message, and the attribute diff.
        let args = r#"{"line": "b", "mode": "u=rw,go="}"#;
        let checked = run(&LineInFile, p, args, true, true).expect("runs");
        assert!(checked.changed);
        assert_eq!(
            checked.msg.as_deref(),
            Some("ownership, perms or SE linux context changed")
        );
        assert_eq!(mode_of(&path), 0o604);
        assert_eq!(checked.diffs[0].before, "{\n    \"mode\": \"0604\"\n}\n");
        assert_eq!(checked.diffs[0].after, "{\n    \"mode\": \"0600\"\n}\n");
        let out = run(&LineInFile, p, args, false, false).expect("runs");
        assert!(out.changed);
        assert_eq!(mode_of(&path), 0o600);
        assert!(
            !run(&LineInFile, p, args, false, false)
                .expect("runs")
                .changed
        );

        // Content and mode together.
        let out = run(
            &LineInFile,
            p,
            r#"{"line": "c", "mode": 420}"#,
            false,
            false,
        )
        .expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("line added and ownership, perms or SE linux context changed")
        );
        assert_eq!(mode_of(&path), 0o644);
    }

    #[test]
    fn an_unknown_owner_fails_with_ansibles_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(
            &LineInFile,
            p,
            r#"{"line": "a", "owner": "no such user"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("chown failed: failed to look up user no such user")
        );
    }

    #[test]
    fn backup_keeps_the_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "old\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(
            &LineInFile,
            p,
            r#"{"regexp": "^old", "line": "new", "backup": true}"#,
            false,
            false,
        )
        .expect("runs");
        let backup = out
            .result
            .get("backup")
            .and_then(Value::as_str)
            .expect("backup path");
        assert!(
            backup.starts_with(&format!("{p}.")) && backup.ends_with('~'),
            "{backup}"
        );
        assert_eq!(std::fs::read_to_string(backup).expect("backup"), "old\n");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        // Unchanged: no backup.
        let out = run(
            &LineInFile,
            p,
            r#"{"regexp": "^new", "line": "new", "backup": true}"#,
            false,
            false,
        )
        .expect("runs");
        assert_eq!(out.result.get("backup"), Some(&Value::from("")));
    }

    #[test]
    fn a_failed_backup_fails_with_ansibles_message() {
        // A name so long that the backup's (name.PID.date~) is too long for the filesystem.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x".repeat(240));
        std::fs::write(&path, "old\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(
            &LineInFile,
            p,
            r#"{"line": "new", "backup": true}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.failed);
        let msg = out.msg.unwrap_or_default();
        assert!(
            msg.starts_with(&format!("Could not make backup of '{p}' to '{p}."))
                && msg.ends_with("~': File name too long"),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
    }

    #[test]
    fn validate_runs_on_the_new_content_before_it_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let refused = run(
            &LineInFile,
            p,
            r#"{"line": "bad", "validate": "sh -c '! grep -q bad \"$0\" || { echo no bad >&2; exit 3; }' %s"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(refused.failed);
        assert_eq!(
            refused.msg.as_deref(),
            Some("failed to validate: rc:3 error:no bad\n")
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\n");
        let accepted = run(
            &LineInFile,
            p,
            r#"{"line": "good", "validate": "grep -q good %s"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(accepted.changed && !accepted.failed, "{accepted:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\ngood\n");
    }

    #[test]
    fn validate_percent_signs_follow_python_formatting() {
        // Ansible runs `validate % tmpfile`: `%%` is a literal `%` (checked with 2.19).
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(
            &LineInFile,
            p,
            r#"{"line": "100%", "validate": "grep -q 100%% %s"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\n100%\n");
    }

    #[test]
    fn symlinks_are_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real");
        let link = dir.path().join("link");
        std::fs::write(&target, "a\n").expect("write");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let out = run(
            &LineInFile,
            link.to_str().expect("utf-8"),
            r#"{"line": "b"}"#,
            false,
            false,
        )
        .expect("runs");
        assert!(out.changed);
        assert!(std::fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "a\nb\n");
    }

    #[test]
    fn absent_reports_found_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "keep\ndrop 1\nkeep too\ndrop 2").expect("write");
        let p = path.to_str().expect("utf-8");
        let args = r#"{"regexp": "^drop", "state": "absent"}"#;
        let checked = run(&LineInFile, p, args, true, false).expect("runs");
        assert!(checked.changed);
        assert_eq!(checked.msg.as_deref(), Some("2 line(s) removed"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "keep\ndrop 1\nkeep too\ndrop 2"
        );
        let out = run(&LineInFile, p, args, false, false).expect("runs");
        assert_eq!(out.result.get("found"), Some(&Value::from(2)));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "keep\nkeep too\n"
        );
        let again = run(&LineInFile, p, args, false, false).expect("runs");
        assert!(!again.changed);
        assert_eq!(again.result.get("found"), Some(&Value::from(0)));
    }

    #[test]
    fn insertafter_on_a_last_line_without_newline_does_not_glue_lines() {
        let spec_re = pyre::compile("^a", false, false).expect("compiles");
        let spec = PresentSpec {
            line: "x",
            matcher: None,
            insert: Insert::After(&spec_re),
            backrefs: false,
            firstmatch: false,
        };
        let edit = present("a", &spec).expect("runs");
        assert_eq!(edit.content, "a\nx\n");
        assert_eq!(edit.msg, "line added");
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let err = run(
            &LineInFile,
            "/nonexistent",
            r#"{"line": "x", "lin": "y"}"#,
            false,
            false,
        )
        .expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("Unsupported parameters for (lineinfile) module: lin."),
            "{err}"
        );
    }

    #[test]
    fn round_trips_one_exec_when_ok_one_exec_and_a_put_when_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "a\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let (changed, execs, puts) = count_round_trips(&LineInFile, p, r#"{"line": "x"}"#);
        assert!(changed.changed);
        assert_eq!((execs, puts), (1, 1));
        let (ok, execs, puts) = count_round_trips(&LineInFile, p, r#"{"line": "x"}"#);
        assert!(!ok.changed);
        assert_eq!((execs, puts), (1, 0));
    }

    #[test]
    fn a_rewrite_as_root_keeps_the_files_owner_and_group() {
        let uid = current_uid();
        if uid != 0 {
            return; // Only root can hand files to other users.
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owned");
        std::fs::write(&path, "a\n").expect("write");
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
        let p = path.to_str().expect("utf-8");
        assert!(
            run(&LineInFile, p, r#"{"line": "b"}"#, false, false)
                .expect("runs")
                .changed
        );
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        // And an explicit owner wins, reported like Ansible.
        let out = run(
            &LineInFile,
            p,
            r#"{"line": "b", "owner": "root", "group": "0"}"#,
            false,
            true,
        )
        .expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("ownership, perms or SE linux context changed")
        );
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert!(
            !run(
                &LineInFile,
                p,
                r#"{"line": "b", "owner": "0", "group": "root"}"#,
                false,
                false
            )
            .expect("runs")
            .changed
        );
    }

    /// The current uid, read the way a target would report it.
    fn current_uid() -> u32 {
        let out = std::process::Command::new("id")
            .arg("-u")
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(u32::MAX)
    }

    /// A local host whose shell has HOME set to a tempdir.
    struct HomeHost(crate::local::LocalHost, String);

    impl crate::Host for HomeHost {
        fn name(&self) -> &str {
            "localhost"
        }
        fn exec(&mut self, cmd: &crate::Cmd) -> Result<crate::Output, crate::HostError> {
            self.0.exec(&cmd.clone().env("HOME", self.1.clone()))
        }
        fn put(&mut self, d: &[u8], p: &str, a: &crate::FileAttrs) -> Result<(), crate::HostError> {
            self.0.put(d, p, a)
        }
        fn get(&mut self, p: &str) -> Result<Vec<u8>, crate::HostError> {
            self.0.get(p)
        }
    }

    #[test]
    fn a_leading_tilde_is_the_remote_users_home() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rc"), "a\n").expect("write");
        let home = dir.path().to_str().expect("utf-8").to_string();
        let mut host = HomeHost(crate::local::LocalHost::new("localhost"), home);
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let args: Map = serde_json::from_str(r#"{"path": "~/rc", "line": "b"}"#).expect("json");
        let out = LineInFile.run(&mut ctx, &args).expect("runs");
        assert!(out.changed);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rc")).expect("read"),
            "a\nb\n"
        );
    }
}
