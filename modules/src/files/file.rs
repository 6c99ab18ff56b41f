//! The `file` module: a path's state (file, directory, link, hard, touch, absent) with its
//! owner, group, mode and times.
//!
//! One exec reads everything any state needs (the path, what a link points to, the link
//! source, the umask, the target's reading of `*_time` values, and the tree below for
//! `recurse`); a change costs one more exec, which also stats the result.
//!
//! Where we differ from Ansible, on purpose:
//! - `recurse` never follows symlinks inside the tree (Ansible's default `follow: yes` would
//!   chmod/chown whatever a link inside the tree points to, even outside it), and applies
//!   the change with `chmod -R`/`chown -R -h`, which keeps the script small for big trees.
//!   Times are only set on the top directory.
//! - The diff shows owners/groups as given (names or ids); Ansible shows numeric ids.
//! - Replacing a symlink (`state: link` over an existing link) uses `ln -sfn`, which is not
//!   atomic; files and hard links are still replaced through a rename.

use serde::Deserialize;
use serde_json::json;

use super::common::{
    attr_failure_msg, join_path, last_reason, mkdirs_script, parent_dir, path_info, state_diff,
    tree_entries, FileKind, ModeSpec, PathStat, Records, StatResult, TreeEntry, WantAttrs, PRELUDE,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `file`.
pub struct File;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum FileState {
    Absent,
    Directory,
    File,
    Hard,
    Link,
    Touch,
}

fn yes() -> bool {
    true
}

fn time_format() -> String {
    "%Y%m%d%H%M.%S".into()
}

#[derive(Debug, Deserialize)]
struct FileArgs {
    #[serde(alias = "dest", alias = "name")]
    path: String,
    state: Option<FileState>,
    src: Option<String>,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default)]
    recurse: bool,
    #[serde(default)]
    force: bool,
    #[serde(default = "yes")]
    follow: bool,
    modification_time: Option<String>,
    #[serde(default = "time_format")]
    modification_time_format: String,
    access_time: Option<String>,
    #[serde(default = "time_format")]
    access_time_format: String,
    /// Set by the engine when `copy`/`template` hand a directory destination to `file`.
    _original_basename: Option<String>,
    /// Accepted for compatibility; every write here is a rename or a metadata change.
    #[serde(default)]
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
}

/// One of `modification_time` / `access_time`, read.
#[derive(Debug, Clone, PartialEq)]
enum TimeSpec {
    Preserve,
    Now,
    /// A wall-clock time on the target: `date -d` text and `touch -t` text.
    At {
        date: String,
        touch: String,
    },
}

impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<FileArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let item = match Item::prepare(args)? {
            Ok(item) => item,
            Err(failed) => return Ok(failed),
        };
        let script = Script::new().raw(PRELUDE).then(item.probe_script(ctx.diff));
        let out = ctx.host.exec(&Cmd::script(script))?;
        let probe = item.parse_probe(&Records::parse(&out.stdout));
        let plan = match item.plan(&probe, ctx.check, ctx.diff) {
            Ok(plan) => plan,
            Err(failed) => return Ok(*failed),
        };
        plan.finish(ctx, &item.want)
    }

    fn run_many(
        &self,
        ctx: &mut Ctx<'_>,
        items: &[Map],
    ) -> Option<Vec<Result<Outcome, ModuleError>>> {
        run_batch(self, ctx, items)
    }
}

/// One item's arguments, read and checked: what every stage needs.
struct Item {
    a: FileArgs,
    want: WantAttrs,
    mtime: TimeSpec,
    atime: TimeSpec,
}

impl Item {
    /// Arguments in; `Ok(Err(outcome))` for values Ansible fails the task on (bad times).
    fn prepare(args: &Map) -> Result<Result<Item, Outcome>, ModuleError> {
        let a: FileArgs = args::parse("file", args)?;
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        // Ansible defaults missing times to "preserve", or "now" for touch.
        let default_time = |given: &Option<String>| match (given, a.state) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(FileState::Touch)) => Some("now".into()),
            (None, _) => None,
        };
        let mtime = match time_spec(
            default_time(&a.modification_time),
            &a.modification_time_format,
        ) {
            Ok(t) => t,
            Err(msg) => return Ok(Err(Outcome::failed(msg))),
        };
        let atime = match time_spec(default_time(&a.access_time), &a.access_time_format) {
            Ok(t) => t,
            Err(msg) => return Ok(Err(Outcome::failed(msg))),
        };
        Ok(Ok(Item {
            a,
            want,
            mtime,
            atime,
        }))
    }

    /// What the probe found, turned into the change to make (or the failure to report).
    fn plan(&self, probe: &Probe, check: bool, diff: bool) -> Result<Plan, Box<Outcome>> {
        let a = &self.a;
        // The target turns formatted times into timestamps (its own time zone, as Python's
        // mktime does there); a value its `date` cannot read fails like a bad format.
        for (spec, epoch, value, format) in [
            (
                &self.mtime,
                probe.mtime_epoch,
                &a.modification_time,
                &a.modification_time_format,
            ),
            (
                &self.atime,
                probe.atime_epoch,
                &a.access_time,
                &a.access_time_format,
            ),
        ] {
            if let (TimeSpec::At { date, .. }, None) = (spec, epoch) {
                return Err(Box::new(Outcome::failed(format!(
                    "Error while obtaining timestamp for time {} using format {format}: the target cannot read {date}",
                    value.as_deref().unwrap_or_default()
                ))));
            }
        }
        if let StatResult::Error(msg) = &probe.st {
            return Err(fail(msg.clone(), &probe.path));
        }
        let state = self.state(probe);
        if a.recurse && state != FileState::Directory {
            return Err(fail(
                "recurse option requires state to be 'directory'",
                &probe.path,
            ));
        }
        if a.src.is_some() && !matches!(state, FileState::Link | FileState::Hard) {
            return Err(fail(
                "src option requires state to be 'link' or 'hard'",
                &probe.path,
            ));
        }
        let task = Task {
            a,
            want: &self.want,
            mtime: self.mtime.clone(),
            atime: self.atime.clone(),
            probe,
            check,
            diff,
        };
        let plan = match state {
            FileState::File => task.ensure_file(),
            FileState::Directory => task.ensure_directory(),
            FileState::Link => task.ensure_symlink(),
            FileState::Hard => task.ensure_hardlink(),
            FileState::Touch => task.touch(),
            FileState::Absent => task.ensure_absent(),
        };
        plan.map_err(|failed| Box::new(with_failure_info(*failed, probe)))
    }

    /// The state asked for, or the one the path has (a missing path: file, or directory
    /// with `recurse`).
    fn state(&self, probe: &Probe) -> FileState {
        match self.a.state {
            Some(s) => s,
            None => match state_of(&probe.st) {
                "directory" => FileState::Directory,
                "link" => FileState::Link,
                "hard" => FileState::Hard,
                "absent" if self.a.recurse => FileState::Directory,
                _ => FileState::File,
            },
        }
    }
}

/// The exit status of a batched change whose item found its path no longer as probed.
const STALE: &str = "97";

/// [`Module::run_many`] for `file`: every item's probe in one exec, every change in one more.
///
/// Items are probed together before any is changed, so an item whose path an earlier item
/// changes (the same path twice, a directory and then its parent, two names for one
/// directory through a symlink) would be planned from a state it no longer has. Each change
/// therefore first checks that its path is still as probed (absent: `[ -e ]`/`[ -L ]`, no
/// process; present: the same stat line); the first that is not stops the batch, and it
/// and every later item run one by one, in order, as a loop would run them. The same goes
/// for an item whose path is a symlink (its change lands on the link's target). Each change
/// runs in a subshell of its own, with its stderr kept apart, so one item's failure reads
/// as it would alone and does not stop the items after it.
fn run_batch(
    module: &File,
    ctx: &mut Ctx<'_>,
    items: &[Map],
) -> Option<Vec<Result<Outcome, ModuleError>>> {
    if items.len() < 2 {
        return None;
    }
    let mut prepared = Vec::with_capacity(items.len());
    for args in items {
        // Bad arguments and shapes not batched here: one by one, as before.
        let item = Item::prepare(args).ok()?.ok()?;
        let a = &item.a;
        let simple = matches!(
            a.state,
            Some(FileState::Directory | FileState::File | FileState::Touch | FileState::Absent)
        ) && a.src.is_none()
            && !a.recurse
            && a._original_basename.is_none();
        if !simple {
            return None;
        }
        prepared.push(item);
    }

    let mut probe_script = Script::new().raw(PRELUDE);
    for (i, item) in prepared.iter().enumerate() {
        probe_script = probe_script
            .raw("\n__kv item")
            .arg(i.to_string())
            .raw("\n")
            .then(item.probe_script(ctx.diff));
    }
    let out = match ctx.host.exec(&Cmd::script(probe_script)) {
        Ok(out) => out,
        Err(e) => return Some(vec![Err(e.into())]),
    };
    let probed = split_items(&Records::parse(&out.stdout), prepared.len());

    // Plans for the items before the first one that must run alone.
    let mut plans: Vec<(Handled, Probe, Option<String>)> = Vec::new();
    for (item, records) in prepared.iter().zip(&probed) {
        let Some(records) = records else { break };
        let probe = item.parse_probe(records);
        if matches!(&probe.st, StatResult::Present(st) if st.kind == FileKind::Link) {
            break;
        }
        let plan = item.plan(&probe, ctx.check, ctx.diff);
        plans.push((plan, probe, records.get("st").map(str::to_string)));
    }

    // One exec for every change, each behind the check that its path is as probed.
    let mut apply = Script::new().raw(PRELUDE).raw("\nexec 3>&1\n");
    let mut any_change = false;
    for (i, (plan, probe, st_line)) in plans.iter().enumerate() {
        let Some(change) = plan.as_ref().ok().and_then(|p| p.change_script(ctx.check)) else {
            continue;
        };
        any_change = true;
        let premise = match (&probe.st, st_line) {
            (StatResult::Present(_), Some(line)) => Script::new()
                .set("__x", line)
                .raw("; __stv \"$__pp\"; [ \"$__o\" = \"$__x\" ] || exit")
                .raw(STALE),
            _ => Script::new()
                .raw("if [ -e \"$__pp\" ] || [ -L \"$__pp\" ]; then exit")
                .raw(STALE)
                .raw("; fi"),
        };
        apply = apply
            .raw("__kv item")
            .arg(i.to_string())
            .raw("\n")
            .set("__pp", &probe.path)
            .raw("\n__e=$( {")
            .then(premise)
            .raw("\n")
            .then(change)
            .raw("\n} 2>&1 >&3 3>&- ); __s=$?; __kv rc \"$__s\"; __kv err \"$__e\"; [ \"$__s\" != ")
            .raw(STALE)
            .raw("] || exit 0\n");
    }
    let mut applied: Vec<Option<Records>> = vec![None; plans.len()];
    if any_change {
        let out = match ctx.host.exec(&Cmd::script(apply)) {
            Ok(out) => out,
            Err(e) => return Some(vec![Err(e.into())]),
        };
        applied = split_items(&Records::parse(&out.stdout), plans.len());
    }

    let mut results = Vec::with_capacity(items.len());
    for (i, (plan, _, _)) in plans.into_iter().enumerate() {
        let plan = match plan {
            Ok(plan) => plan,
            Err(failed) => {
                results.push(Ok(*failed));
                continue;
            }
        };
        let ran = match (plan.change_script(ctx.check).is_some(), applied[i].take()) {
            (false, _) => None,
            (true, Some(r)) if r.get("rc") != Some(STALE) && r.get("rc").is_some() => {
                let stderr = r.get("err").unwrap_or_default().to_string();
                let success = r.get("rc") == Some("0");
                Some(Applied {
                    records: r,
                    stderr,
                    success,
                })
            }
            // Stale, or not reached: this item and the rest run one by one.
            (true, _) => break,
        };
        results.push(Ok(plan.outcome(ctx.diff, &prepared[i].want, ran)));
    }
    for args in &items[results.len()..] {
        let result = module.run(ctx, args);
        let gone = matches!(result, Err(ModuleError::Host(_)));
        results.push(result);
        if gone {
            break;
        }
    }
    Some(results)
}

/// A batch script's records split at its `item=N` records: one group per item (`None` for
/// an item the script never reached).
fn split_items(records: &Records, count: usize) -> Vec<Option<Records>> {
    let mut groups: Vec<Option<Records>> = vec![None; count];
    let mut current: Option<usize> = None;
    for (key, value) in &records.items {
        if key == "item" {
            current = value.parse().ok().filter(|&i| i < count);
            if let Some(i) = current {
                groups[i] = Some(Records::default());
            }
            continue;
        }
        if let Some(group) = current.and_then(|i| groups[i].as_mut()) {
            group.items.push((key.clone(), value.clone()));
        }
    }
    groups
}

/// Ansible adds `add_path_info` keys to failures too, for the path they name, if it exists.
fn with_failure_info(mut failed: Outcome, probe: &Probe) -> Outcome {
    let named = failed
        .result
        .get("path")
        .or_else(|| failed.result.get("dest"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let st = match named {
        Some(p) if p == probe.path => probe.st.present(),
        Some(p) if probe.real.as_deref() == Some(p.as_str()) => probe.real_st.present(),
        _ => None,
    };
    if let Some(st) = st {
        failed.result.extend(path_info(st));
    }
    failed
}

/// `get_state` for a stat result.
fn state_of(st: &StatResult) -> &'static str {
    match st {
        StatResult::Present(st) => st.ansible_state(),
        _ => "absent",
    }
}

/// Read a `*_time` argument; formatted times are checked here, converted on the target.
fn time_spec(value: Option<String>, format: &str) -> Result<TimeSpec, String> {
    let Some(value) = value else {
        return Ok(TimeSpec::Preserve);
    };
    match value.as_str() {
        "preserve" => Ok(TimeSpec::Preserve),
        "now" => Ok(TimeSpec::Now),
        _ => {
            let t = strptime(&value, format).map_err(|e| {
                format!(
                    "Error while obtaining timestamp for time {value} using format {format}: {e}"
                )
            })?;
            Ok(TimeSpec::At {
                date: format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    t.year, t.month, t.day, t.hour, t.minute, t.second
                ),
                touch: format!(
                    "{:04}{:02}{:02}{:02}{:02}.{:02}",
                    t.year, t.month, t.day, t.hour, t.minute, t.second
                ),
            })
        }
    }
}

/// A broken-down time as Python's `time.strptime` fills it (missing fields: 1900-01-01 00:00:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BrokenTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The subset of Python's `strptime` that time arguments use: `%Y %y %m %d %H %I %p %M %S
/// %b %B %h %%`, literal text, and whitespace matching any run of whitespace.
fn strptime(text: &str, format: &str) -> Result<BrokenTime, String> {
    let mismatch = || format!("time data '{text}' does not match format '{format}'");
    let mut t = BrokenTime {
        year: 1900,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    };
    let mut pm: Option<bool> = None;
    let mut hour12: Option<u32> = None;
    let mut rest = text;
    let mut fmt = format.chars().peekable();
    // Up to `max` digits, at least one.
    fn digits(s: &str, max: usize) -> Option<(u32, &str)> {
        let n = s
            .char_indices()
            .take(max)
            .take_while(|(_, c)| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        Some((s[..n].parse().ok()?, &s[n..]))
    }
    while let Some(c) = fmt.next() {
        if c == '%' {
            let d = fmt.next().ok_or_else(|| "stray % in format".to_string())?;
            let (value, after) = match d {
                'Y' => digits(rest, 4).ok_or_else(mismatch)?,
                'y' | 'm' | 'd' | 'H' | 'I' | 'M' | 'S' => digits(rest, 2).ok_or_else(mismatch)?,
                'b' | 'B' | 'h' => {
                    let lower = rest.to_ascii_lowercase();
                    let found = MONTHS.iter().enumerate().find_map(|(i, m)| {
                        if lower.starts_with(m) {
                            Some((i as u32 + 1, m.len()))
                        } else if lower.starts_with(&m[..3]) {
                            Some((i as u32 + 1, 3))
                        } else {
                            None
                        }
                    });
                    let (month, len) = found.ok_or_else(mismatch)?;
                    (month, &rest[len..])
                }
                'p' => {
                    let lower = rest.get(..2).map(str::to_ascii_lowercase);
                    match lower.as_deref() {
                        Some("am") => pm = Some(false),
                        Some("pm") => pm = Some(true),
                        _ => return Err(mismatch()),
                    }
                    (0, &rest[2..])
                }
                '%' => {
                    let after = rest.strip_prefix('%').ok_or_else(mismatch)?;
                    (0, after)
                }
                other => return Err(format!("'{other}' is a bad directive in format '%{other}'")),
            };
            match d {
                'Y' => t.year = value as i32,
                'y' => t.year = if value < 69 { 2000 } else { 1900 } + value as i32,
                'm' | 'b' | 'B' | 'h' => t.month = value,
                'd' => t.day = value,
                'H' => t.hour = value,
                'I' => hour12 = Some(value),
                'M' => t.minute = value,
                'S' => t.second = value,
                _ => {}
            }
            rest = after;
        } else if c.is_whitespace() {
            while fmt.peek().is_some_and(|c| c.is_whitespace()) {
                fmt.next();
            }
            let trimmed = rest.trim_start();
            if trimmed.len() == rest.len() {
                return Err(mismatch());
            }
            rest = trimmed;
        } else {
            rest = rest.strip_prefix(c).ok_or_else(mismatch)?;
        }
    }
    if !rest.is_empty() {
        return Err(format!("unconverted data remains: {rest}"));
    }
    if let Some(h) = hour12 {
        t.hour = match pm {
            Some(true) => h % 12 + 12,
            _ => h % 12,
        };
    }
    if !(1..=12).contains(&t.month)
        || !(1..=31).contains(&t.day)
        || t.hour > 23
        || t.minute > 59
        || t.second > 61
    {
        return Err(mismatch());
    }
    Ok(t)
}

/// Everything the first exec learns.
#[derive(Debug)]
struct Probe {
    /// The path after Ansible's "directory + basename" rewrite.
    path: String,
    st: StatResult,
    /// For a symlink: what it says, where it leads, and that file's stat.
    link_target: Option<String>,
    real: Option<String>,
    real_st: StatResult,
    umask: u32,
    /// `state: link`: the source resolved against the link's directory, and its stat.
    absrc: Option<String>,
    absrc_real: Option<String>,
    absrc_st: StatResult,
    /// `src` with a leading `~` expanded, as the target sees it.
    src: Option<String>,
    /// `state: hard`: the source's stat (following links, relative to the working directory).
    src_st: StatResult,
    dir_empty: bool,
    mtime_epoch: Option<f64>,
    atime_epoch: Option<f64>,
    tree: Vec<TreeEntry>,
}

impl Item {
    /// The probe of one item (needs [`PRELUDE`]); it sets every variable it uses, so items'
    /// probes can follow each other in one script.
    fn probe_script(&self, diff: bool) -> Script {
        let (a, mtime, atime) = (&self.a, &self.mtime, &self.atime);
        // Ansible puts `_original_basename` (or the src's basename) under an existing directory.
        let rewrite = !matches!(a.state, Some(FileState::Link) | Some(FileState::Absent));
        let base = if rewrite {
            a._original_basename
                .clone()
                .filter(|b| !b.is_empty())
                .or_else(|| {
                    a.src
                        .as_deref()
                        .map(|s| super::common::basename(s).to_string())
                })
                .filter(|b| !b.is_empty())
        } else {
            None
        };
        let src = a.src.clone().unwrap_or_default();
        let want_tree = a.recurse || (a.state == Some(FileState::Absent) && diff);
        let date_of = |t: &TimeSpec| match t {
            TimeSpec::At { date, .. } => date.clone(),
            _ => String::new(),
        };
        Script::new()
        .set("p", &a.path)
        .set("pj", base.as_deref().map(|b| join_path(&a.path, b)).unwrap_or_default())
        .set("s", &src)
        .set("a1", join_path(&a.path, &src))
        .set("a2", join_path(&parent_dir(&a.path), &src))
        .set("mt", date_of(mtime))
        .set("at", date_of(atime))
        .set("tree", if want_tree { "1" } else { "" })
        // Only `state: link` asks whether a directory is empty (to replace it).
        .set("le", if a.state == Some(FileState::Link) { "1" } else { "" })
        // Hard links (asked, or kept when no state is given) need the source's own stat.
        .set("hard", if matches!(a.state, Some(FileState::Hard) | None) { "1" } else { "" })
        .raw(
            "\n__tilde \"$p\"; p=$__o; __tilde \"$pj\"; pj=$__o; __tilde \"$s\"; s=$__o; __tilde \"$a1\"; a1=$__o; __tilde \"$a2\"; a2=$__o;\n\
             if [ -n \"$pj\" ] && [ -d \"$p\" ]; then p=$pj; fi\n\
             __kv path \"$p\"; __kst st \"$p\"; __kumask\n\
             if [ -L \"$p\" ]; then __kvc tgt readlink -- \"$p\"; __kvc real readlink -f -- \"$p\"; __kstL rst \"$p\"; fi\n\
             if [ -n \"$le\" ] && [ -d \"$p\" ] && [ ! -L \"$p\" ] && [ -z \"$(ls -A -- \"$p\" 2>/dev/null)\" ]; then __kv empty 1; fi\n\
             if [ -n \"$s\" ]; then\n\
               if [ ! -L \"$p\" ] && [ -d \"$p\" ]; then a=$a1; else a=$a2; fi\n\
               __kv xsrc \"$s\"; __kv absrc \"$a\"; __kstL ast \"$a\"; __kvc areal readlink -f -- \"$a\"\n\
               if [ -n \"$hard\" ]; then __kstL sst \"$s\"; fi\n\
             fi\n\
             if [ -n \"$mt\" ]; then __kvc mte date -d \"$mt\" +%s; fi\n\
             if [ -n \"$at\" ]; then __kvc ate date -d \"$at\" +%s; fi\n\
             if [ -n \"$tree\" ] && [ -d \"$p\" ] && [ ! -L \"$p\" ]; then __tree \"$p\" -mindepth 1; fi\n",
        )
    }

    /// The probe's records read back.
    fn parse_probe(&self, r: &Records) -> Probe {
        let a = &self.a;
        let opt_stat = |key: &str| match r.get(key) {
            Some(line) => StatResult::parse(line),
            None => StatResult::Absent,
        };
        let epoch = |key: &str| r.get(key).and_then(|v| v.trim().parse::<f64>().ok());
        Probe {
            path: r.get("path").unwrap_or(&a.path).to_string(),
            st: r.stat("st"),
            link_target: r.get("tgt").map(str::to_string),
            real: r.get("real").filter(|s| !s.is_empty()).map(str::to_string),
            real_st: opt_stat("rst"),
            umask: r.umask(),
            src: a
                .src
                .as_ref()
                .map(|s| r.get("xsrc").unwrap_or(s).to_string()),
            absrc: r.get("absrc").map(str::to_string),
            absrc_real: r.get("areal").filter(|s| !s.is_empty()).map(str::to_string),
            absrc_st: opt_stat("ast"),
            src_st: opt_stat("sst"),
            dir_empty: r.get("empty").is_some(),
            mtime_epoch: epoch("mte"),
            atime_epoch: epoch("ate"),
            tree: tree_entries(r),
        }
    }
}

/// One run of the module, between the probe and the change.
struct Task<'a> {
    a: &'a FileArgs,
    want: &'a WantAttrs,
    mtime: TimeSpec,
    atime: TimeSpec,
    probe: &'a Probe,
    check: bool,
    diff: bool,
}

/// What a state handler decided: result keys, diff, and the change script (if any).
struct Plan {
    changed: bool,
    /// `path` or `dest`, and its value.
    key: &'static str,
    path: String,
    /// The path whose `add_path_info` the result carries (the link itself for links).
    info_path: Option<String>,
    extra: Map,
    before: Map,
    after: Map,
    script: Script,
    /// Stat of `info_path` before the change, for check mode and unchanged runs.
    current: Option<PathStat>,
    warnings: Vec<String>,
}

impl Plan {
    fn new(key: &'static str, path: &str) -> Plan {
        let mut before = Map::new();
        before.insert("path".into(), json!(path));
        Plan {
            changed: false,
            key,
            path: path.to_string(),
            info_path: Some(path.to_string()),
            extra: Map::new(),
            after: before.clone(),
            before,
            script: Script::new(),
            current: None,
            warnings: Vec::new(),
        }
    }

    fn state_change(&mut self, prev: &str, state: &str) {
        if prev != state {
            self.before.insert("state".into(), json!(prev));
            self.after.insert("state".into(), json!(state));
        }
    }

    fn run(&mut self, script: Script) {
        self.script = std::mem::take(&mut self.script).then(script);
    }

    /// The change to run (needs [`PRELUDE`]): the plan's commands, then the stat of the path
    /// the result describes, as `fin`. `None`: nothing to run (no change, or check mode).
    fn change_script(&self, check: bool) -> Option<Script> {
        if !self.changed || check {
            return None;
        }
        let mut script = self.script.clone();
        if let Some(p) = &self.info_path {
            script = script.raw("\n").set("fin", p).raw("\n__kst fin \"$fin\"");
        }
        Some(script)
    }

    /// Apply the change (unless in check mode) and build the outcome.
    fn finish(self, ctx: &mut Ctx<'_>, want: &WantAttrs) -> Result<Outcome, ModuleError> {
        let applied = match self.change_script(ctx.check) {
            Some(script) => {
                let out = ctx
                    .host
                    .exec(&Cmd::script(Script::new().raw(PRELUDE).then(script)))?;
                Some(Applied {
                    records: Records::parse(&out.stdout),
                    stderr: out.stderr_str(),
                    success: out.success(),
                })
            }
            None => None,
        };
        Ok(self.outcome(ctx.diff, want, applied))
    }

    /// The outcome, given what running [`Plan::change_script`] gave (if it ran).
    fn outcome(self, diff: bool, want: &WantAttrs, applied: Option<Applied>) -> Outcome {
        let mut info = self.current.clone();
        if let Some(applied) = applied {
            let r = &applied.records;
            let stderr = &applied.stderr;
            if let Some(what) = r.get("fail") {
                let msg = failure_msg(what, r.get("cur").unwrap_or(&self.path), stderr)
                    .unwrap_or_else(|| attr_failure_msg(what, want, stderr));
                return Outcome::failed(msg).with("path", self.path.as_str());
            }
            if !applied.success {
                return Outcome::failed(format!(
                    "changing {} failed: {}",
                    self.path,
                    stderr.trim()
                ))
                .with("path", self.path.as_str());
            }
            info = r.stat("fin").present().cloned();
        }
        let mut outcome = Outcome::changed(self.changed).with(self.key, self.path.as_str());
        outcome.result.extend(self.extra);
        if let Some(st) = &info {
            outcome.result.extend(path_info(st));
        }
        if !self.warnings.is_empty() {
            outcome
                .result
                .insert("warnings".into(), json!(self.warnings));
        }
        // Like Ansible's callback, a diff is only shown for a change.
        if diff && self.changed {
            if let Some(d) = state_diff(&self.before, &self.after) {
                outcome.diffs.push(d);
            }
        }
        outcome
    }
}

/// What a change script left: its records, its stderr, whether it exited 0.
struct Applied {
    records: Records,
    stderr: String,
    success: bool,
}

/// A handler's plan, or the failure it ran into (boxed: outcomes are big).
type Handled = Result<Plan, Box<Outcome>>;

fn fail(msg: impl Into<String>, path: &str) -> Box<Outcome> {
    Box::new(Outcome::failed(msg).with("path", path))
}

impl Task<'_> {
    /// The path attributes apply to: a followed link's target, or the path itself.
    fn followed(&self) -> (String, StatResult) {
        let p = self.probe;
        if self.a.follow && state_of(&p.st) == "link" {
            if let Some(real) = &p.real {
                return (real.clone(), p.real_st.clone());
            }
        }
        (p.path.clone(), p.st.clone())
    }

    /// Owner/group/mode changes for `st` at `path`, into the plan's script and diff.
    fn attrs(
        &self,
        plan: &mut Plan,
        path: &str,
        st: Option<&PathStat>,
    ) -> Result<(), Box<Outcome>> {
        let attr_plan = match st {
            Some(st) => self
                .want
                .plan(st, self.probe.umask)
                .map_err(|e| fail(e, path))?,
            // A path that does not exist yet (check mode): every asked attribute would change.
            None => {
                if !self.want.is_empty() {
                    plan.changed = true;
                }
                return Ok(());
            }
        };
        if !attr_plan.is_empty() {
            plan.changed = true;
            attr_plan.diff_into(&mut plan.before, &mut plan.after);
            plan.run(attr_plan.script(path));
        }
        Ok(())
    }

    /// Time changes for `st` at `path`.
    fn times(&self, plan: &mut Plan, path: &str, st: Option<&PathStat>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        for (spec, epoch, key, flag) in [
            (&self.mtime, self.probe.mtime_epoch, "mtime", "-m"),
            (&self.atime, self.probe.atime_epoch, "atime", "-a"),
        ] {
            let current = st.map(|s| if key == "mtime" { s.mtime } else { s.atime });
            let (target, touch) = match spec {
                TimeSpec::Preserve => continue,
                TimeSpec::Now => (now, None),
                TimeSpec::At { touch, .. } => match epoch {
                    Some(e) => (e, Some(touch.clone())),
                    None => continue,
                },
            };
            if current == Some(target) && touch.is_some() {
                continue;
            }
            plan.changed = true;
            if let Some(c) = current {
                plan.before.insert(key.into(), json!(c));
            }
            plan.after.insert(key.into(), json!(target));
            let mut s = Script::new().raw("touch -c").raw(flag);
            if let Some(t) = touch {
                s = s.raw("-t").arg(t);
            }
            plan.run(s.raw("--").arg(path).raw("|| __fail utime\n"));
        }
    }

    fn ensure_file(&self) -> Handled {
        let (path, st) = self.followed();
        let prev = state_of(&st);
        if !matches!(prev, "file" | "hard") {
            let failed = fail(format!("file ({path}) is {prev}, cannot continue"), &path);
            return Err(Box::new(failed.with("state", prev)));
        }
        let mut plan = Plan::new("path", &path);
        plan.state_change(prev, "file");
        let st = st.present().cloned();
        plan.current = st.clone();
        self.attrs(&mut plan, &path, st.as_ref())?;
        self.times(&mut plan, &path, st.as_ref());
        Ok(plan)
    }

    fn ensure_directory(&self) -> Handled {
        let (path, st) = self.followed();
        let prev = state_of(&st);
        let mut plan = Plan::new("path", &path);
        plan.state_change(prev, "directory");
        match prev {
            "absent" => {
                plan.changed = true;
                if let Some(spec) = &self.want.mode {
                    let umask = self.probe.umask;
                    let bits = spec.resolve_new(true, umask).map_err(|e| fail(e, &path))?;
                    let default = 0o777 & !umask;
                    if bits != default {
                        plan.before
                            .insert("mode".into(), json!(format!("0{default:03o}")));
                        plan.after
                            .insert("mode".into(), json!(format!("0{bits:03o}")));
                    }
                }
                if self.check {
                    plan.info_path = None;
                    return Ok(plan);
                }
                let new_dir = self
                    .want
                    .plan_new(true, self.probe.umask)
                    .map_err(|e| fail(e, &path))?;
                plan.run(mkdirs_script(&path, &new_dir));
                self.times(&mut plan, &path, None);
                Ok(plan)
            }
            "directory" => {
                let st = st.present().cloned();
                plan.current = st.clone();
                self.attrs(&mut plan, &path, st.as_ref())?;
                self.times(&mut plan, &path, st.as_ref());
                if self.a.recurse {
                    self.recurse(&mut plan, &path)?;
                }
                Ok(plan)
            }
            other => Err(fail(format!("{path} already exists as a {other}"), &path)),
        }
    }

    /// `recurse`: plan every entry below, apply with `-R` commands (links are never followed).
    fn recurse(&self, plan: &mut Plan, path: &str) -> Result<(), Box<Outcome>> {
        let (mut owner, mut group, mut mode) = (false, false, false);
        for entry in &self.probe.tree {
            let Some(st) = entry.stat.present() else {
                continue;
            };
            let p = self
                .want
                .plan(st, self.probe.umask)
                .map_err(|e| fail(e, &entry.path))?;
            owner |= p.owner.is_some();
            group |= p.group.is_some();
            mode |= p.mode.is_some();
        }
        if owner || group || mode {
            plan.changed = true;
        }
        if let (true, Some(o)) = (owner, &self.want.owner) {
            plan.run(
                Script::new()
                    .raw("chown -R -h --")
                    .arg(o)
                    .arg(path)
                    .raw("|| __fail chown\n"),
            );
        }
        if let (true, Some(g)) = (group, &self.want.group) {
            plan.run(
                Script::new()
                    .raw("chgrp -R -h --")
                    .arg(g)
                    .arg(path)
                    .raw("|| __fail chgrp\n"),
            );
        }
        if let (true, Some(spec)) = (mode, &self.want.mode) {
            let text = match spec {
                ModeSpec::Bits(b) => format!("{b:o}"),
                ModeSpec::Symbolic(s) => s.clone(),
            };
            plan.run(
                Script::new()
                    .raw("chmod -R --")
                    .arg(text)
                    .arg(path)
                    .raw("|| __fail chmod\n"),
            );
        }
        Ok(())
    }

    fn ensure_symlink(&self) -> Handled {
        let p = self.probe;
        let path = p.path.clone();
        let prev = state_of(&p.st);
        // Without src, `follow` keeps the link's current source.
        let src = match (&p.src, &p.link_target) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(t)) if self.a.follow && p.real_st.present().is_some() => Some(t.clone()),
            _ => None,
        };
        let (absrc, absrc_st, absrc_real) = if self.a.src.is_some() {
            (
                p.absrc.clone().unwrap_or_default(),
                p.absrc_st.clone(),
                p.absrc_real.clone(),
            )
        } else {
            (
                p.real.clone().unwrap_or_default(),
                p.real_st.clone(),
                p.real.clone(),
            )
        };
        if !self.a.force && src.is_some() && absrc_st.present().is_none() {
            let failed = fail(
                format!(
                    "src file does not exist, use 'force=yes' if you really want to create the link: {absrc}"
                ),
                &path,
            );
            return Err(Box::new(failed.with("src", src.unwrap_or_default())));
        }
        match prev {
            "directory" if !self.a.force => {
                return Err(fail(
                    format!("refusing to convert from directory to symlink for {path}"),
                    &path,
                ))
            }
            "directory" if !p.dir_empty => {
                return Err(fail(
                    format!("the directory {path} is not empty, refusing to convert it"),
                    &path,
                ))
            }
            "file" | "hard" if !self.a.force => {
                return Err(fail(
                    format!("refusing to convert from {prev} to symlink for {path}"),
                    &path,
                ))
            }
            _ => {}
        }
        let mut plan = Plan::new("dest", &path);
        plan.state_change(prev, "link");
        plan.extra.insert("src".into(), json!(src));
        let Some(src) = src else {
            if prev != "link" {
                return Err(Box::new(Outcome::failed(
                    "src is required for creating new symlinks",
                )));
            }
            return self.link_attrs(plan, &path, None);
        };
        if prev == "link" {
            if p.link_target.as_deref() != Some(src.as_str()) {
                plan.before.insert(
                    "src".into(),
                    json!(p.link_target.clone().unwrap_or_default()),
                );
                plan.after.insert("src".into(), json!(src));
                plan.changed = true;
            }
        } else {
            plan.changed = true;
        }
        if plan.changed {
            let s = Script::new();
            let s = match prev {
                "absent" => s
                    .raw("ln -s --")
                    .arg(&src)
                    .arg(&path)
                    .raw("|| __fail link\n"),
                "directory" => s
                    .raw("rmdir --")
                    .arg(&path)
                    .raw("&& ln -s --")
                    .arg(&src)
                    .arg(&path)
                    .raw("|| __fail replace\n"),
                "link" => s
                    .raw("ln -sfn --")
                    .arg(&src)
                    .arg(&path)
                    .raw("|| __fail replace\n"),
                _ => {
                    let tmp = temp_beside(&path);
                    s.raw("ln -s --")
                        .arg(&src)
                        .arg(&tmp)
                        .raw("&& mv -f --")
                        .arg(&tmp)
                        .arg(&path)
                        .raw("|| { rm -f --")
                        .arg(&tmp)
                        .raw("; __fail replace; }\n")
                }
            };
            plan.run(s);
        }
        if self.check && prev == "absent" {
            plan.info_path = None;
            return Ok(plan);
        }
        let target = if self.a.follow {
            Some((absrc_real.unwrap_or(absrc), absrc_st))
        } else {
            None
        };
        self.link_attrs(plan, &path, target)
    }

    /// Attributes after `state: link`: on the link's target when following (a warning if
    /// it does not exist), else on the link itself.
    fn link_attrs(
        &self,
        mut plan: Plan,
        path: &str,
        target: Option<(String, StatResult)>,
    ) -> Handled {
        let p = self.probe;
        let target = match target {
            Some(t) => Some(t),
            None if self.a.follow => p.real.clone().map(|r| (r, p.real_st.clone())),
            None => None,
        };
        plan.current = p.st.present().cloned();
        match target {
            Some((real, StatResult::Present(st))) => {
                self.attrs(&mut plan, &real, Some(&st))?;
                self.times(&mut plan, &real, Some(&st));
            }
            Some(_) if self.a.follow => {
                if !self.want.is_empty() {
                    plan.warnings.push(
                        "Cannot set fs attributes on a non-existent symlink target. follow should be set to False to avoid this."
                            .into(),
                    );
                }
            }
            _ => {
                // The link itself: a new link is ours, so ask for every given owner/group.
                match p.st.present().filter(|st| st.kind == FileKind::Link) {
                    Some(st) if !plan.changed => self.attrs(&mut plan, path, Some(st))?,
                    _ => {
                        // A link has no mode of its own.
                        let mut new_link = self
                            .want
                            .plan_new(false, p.umask)
                            .map_err(|e| fail(e, path))?;
                        new_link.mode = None;
                        plan.run(new_link.script(path));
                    }
                }
            }
        }
        Ok(plan)
    }

    fn ensure_hardlink(&self) -> Handled {
        let p = self.probe;
        let path = p.path.clone();
        let prev = state_of(&p.st);
        let src = p.src.clone();
        if prev != "hard" && src.is_none() {
            return Err(Box::new(Outcome::failed(
                "src is required for creating new hardlinks",
            )));
        }
        let src_st = p.src_st.present().cloned();
        if src.is_some() && src_st.is_none() {
            return Err(Box::new(
                Outcome::failed("src does not exist")
                    .with("dest", path.as_str())
                    .with("src", src.unwrap_or_default()),
            ));
        }
        let cannot = |msg: &str| {
            Box::new(
                Outcome::failed(msg)
                    .with("dest", path.as_str())
                    .with("src", src.clone().unwrap_or_default()),
            )
        };
        let mut plan = Plan::new("dest", &path);
        plan.state_change(prev, "hard");
        plan.extra.insert("src".into(), json!(src));
        let same_inode = |st: &PathStat| {
            src_st
                .as_ref()
                .is_some_and(|s| s.inode == st.inode && s.dev == st.dev)
        };
        match (prev, p.st.present()) {
            ("absent", _) => plan.changed = true,
            ("link", _) => {
                if p.link_target != src {
                    plan.before.insert(
                        "src".into(),
                        json!(p.link_target.clone().unwrap_or_default()),
                    );
                    plan.after.insert("src".into(), json!(src));
                    plan.changed = true;
                }
            }
            ("hard", Some(st)) => {
                if src.is_some() && !same_inode(st) {
                    plan.changed = true;
                    if !self.a.force {
                        return Err(cannot(
                            "Cannot link, different hard link exists at destination",
                        ));
                    }
                }
            }
            ("file", _) => {
                plan.changed = true;
                if !self.a.force {
                    return Err(cannot("Cannot link, file exists at destination"));
                }
            }
            _ => {
                if !self.a.force {
                    return Err(cannot(
                        "Cannot link: different hard link exists at destination",
                    ));
                }
                return Err(fail("Error while replacing: Is a directory", &path));
            }
        }
        if plan.changed {
            let src = src.clone().unwrap_or_default();
            // Python's os.link follows a symlinked src; so does `ln -L` (busybox has no -L:
            // plain `ln` there, which links the symlink itself).
            let s = match prev {
                "absent" => Script::new()
                    .raw("{ ln -L --")
                    .arg(&src)
                    .arg(&path)
                    .raw("2>/dev/null || ln --")
                    .arg(&src)
                    .arg(&path)
                    .raw("; } || __fail link\n"),
                // A rename over a symlink to a directory would land inside it: unlink first.
                "link" => Script::new()
                    .raw("rm -f --")
                    .arg(&path)
                    .raw("&& { ln -L --")
                    .arg(&src)
                    .arg(&path)
                    .raw("2>/dev/null || ln --")
                    .arg(&src)
                    .arg(&path)
                    .raw("; } || __fail replace\n"),
                _ => {
                    let tmp = temp_beside(&path);
                    Script::new()
                        .raw("{ ln -L --")
                        .arg(&src)
                        .arg(&tmp)
                        .raw("2>/dev/null || ln --")
                        .arg(&src)
                        .arg(&tmp)
                        .raw("; } && mv -f --")
                        .arg(&tmp)
                        .arg(&path)
                        .raw("|| { rm -f --")
                        .arg(&tmp)
                        .raw("; __fail replace; }\n")
                }
            };
            plan.run(s);
        }
        if self.check && prev == "absent" {
            plan.info_path = None;
            return Ok(plan);
        }
        // After linking, the path is the source's inode: plan against that.
        let st = if plan.changed {
            src_st
        } else {
            p.st.present().cloned()
        };
        plan.current = p.st.present().cloned();
        self.attrs(&mut plan, &path, st.as_ref())?;
        self.times(&mut plan, &path, st.as_ref());
        Ok(plan)
    }

    fn touch(&self) -> Handled {
        let p = self.probe;
        let prev = state_of(&p.st);
        let mut plan = Plan::new("dest", &p.path);
        if prev == "absent" {
            plan.changed = true;
            if self.check {
                plan.info_path = None;
                return Ok(plan);
            }
            plan.run(
                Script::new()
                    .raw(": >>")
                    .arg(&p.path)
                    .raw("|| __fail touch\n"),
            );
        }
        plan.state_change(prev, "touch");
        let (path, st) = self.followed();
        let st = st.present().cloned();
        plan.current = p.st.present().cloned();
        if prev == "absent" {
            // A new file gets every asked attribute.
            let new_file = self
                .want
                .plan_new(false, p.umask)
                .map_err(|e| fail(e, &path))?;
            plan.run(new_file.script(&path));
        } else {
            self.attrs(&mut plan, &path, st.as_ref())?;
        }
        self.times(&mut plan, &path, st.as_ref());
        Ok(plan)
    }

    fn ensure_absent(&self) -> Handled {
        let p = self.probe;
        let prev = state_of(&p.st);
        let mut plan = Plan::new("path", &p.path);
        plan.info_path = None;
        plan.extra.insert("state".into(), json!("absent"));
        if prev == "absent" {
            return Ok(plan);
        }
        plan.changed = true;
        plan.state_change(prev, "absent");
        if prev == "directory" && self.diff {
            let (mut dirs, mut files) = (Vec::new(), Vec::new());
            for entry in &p.tree {
                match entry.stat.present().map(|s| s.kind) {
                    Some(FileKind::Directory) => dirs.push(entry.path.clone()),
                    _ => files.push(entry.path.clone()),
                }
            }
            plan.before.insert(
                "path_content".into(),
                json!({"directories": dirs, "files": files}),
            );
        }
        plan.run(if prev == "directory" {
            Script::new()
                .raw("rm -rf --")
                .arg(&p.path)
                .raw("|| __fail rmtree\n")
        } else {
            Script::new()
                .raw("rm -f --")
                .arg(&p.path)
                .raw("|| __fail unlink\n")
        });
        Ok(plan)
    }
}

/// Ansible's message for a failed `__fail WHAT` step (chown/chgrp/chmod are handled by
/// `attr_failure_msg`); `cur` is the directory being created for `mkdir`.
fn failure_msg(what: &str, cur: &str, stderr: &str) -> Option<String> {
    let reason = last_reason(stderr);
    Some(match what {
        "link" => format!("Error while linking: {reason}"),
        "replace" => format!("Error while replacing: {reason}"),
        "mkdir" => format!("There was an issue creating {cur} as requested: {reason}"),
        "utime" => format!("Error while updating modification or access time: {reason}"),
        "touch" => "Error, could not touch target.".into(),
        "rmtree" => format!("rmtree failed: {reason}"),
        "unlink" => "Unlinking failed.".into(),
        _ => return None,
    })
}

/// A temporary name in `path`'s directory (for an atomic rename over `path`).
fn temp_beside(path: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(".play-{}-{nanos}.tmp", std::process::id());
    join_path(&parent_dir(path), &name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit;
    use crate::local::LocalHost;
    use crate::Host;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    const HOSTILE: &str = "a 'b' \"c\" $(x) `y`\nz";

    fn run_with(args: Value, check: bool, diff: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&File, args, check, diff)
    }

    fn run(args: Value) -> Outcome {
        run_with(args, false, true).expect("runs")
    }

    fn check(args: Value) -> Outcome {
        run_with(args, true, true).expect("runs")
    }

    fn s(p: &Path) -> String {
        p.to_str().expect("utf-8 path").to_string()
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .expect("exists")
            .permissions()
            .mode()
            & 0o7777
    }

    /// Every entry below `root`: relative path, kind and permission bits.
    fn tree(root: &Path) -> Vec<(String, bool, bool, u32)> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).expect("ls") {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("stat");
                let rel = path
                    .strip_prefix(root)
                    .expect("below")
                    .display()
                    .to_string();
                out.push((rel, meta.is_dir(), meta.is_symlink(), mode_of(&path)));
                if meta.is_dir() {
                    todo.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// Runs `items` (JSON with `{}` for the scratch directory) one by one in one scratch
    /// directory and through `run_many` in another, both prepared by `setup`, then checks
    /// that the outcomes (with the directory's name taken out) and the trees left are the
    /// same. Returns the batch's exec count.
    fn same_as_one_by_one(setup: &dyn Fn(&Path), items: &[&str], check: bool, diff: bool) -> usize {
        let (one, many) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        setup(one.path());
        setup(many.path());
        let args = |root: &Path| -> Vec<Map> {
            items
                .iter()
                .map(|item| {
                    let text = item.replace("{}", &s(root));
                    match serde_json::from_str(&text).expect("json") {
                        Value::Object(map) => map,
                        _ => panic!("an object"),
                    }
                })
                .collect()
        };
        let shown = |outcome: &Result<Outcome, ModuleError>, root: &Path| -> String {
            let text = match outcome {
                Ok(o) => format!("{:?} {:?}", o.to_result(), o.diffs),
                Err(e) => format!("error {e}"),
            };
            // The shell names the script line a failure came from: not the same line in
            // a batch script.
            let text = text.replace(&s(root), "ROOT");
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("/bin/sh: ") {
                out.push_str(&rest[..at + 9]);
                rest = rest[at + 9..].trim_start_matches(|c: char| c.is_ascii_digit());
            }
            out.push_str(rest);
            out
        };
        let mut host = LocalHost::new("one");
        let one_by_one: Vec<String> = args(one.path())
            .iter()
            .map(|a| {
                shown(
                    &testkit::run_on(&mut host, &File, a, check, diff),
                    one.path(),
                )
            })
            .collect();
        let mut counting = testkit::CountingHost::new();
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut counting,
            check,
            diff,
            facts: &facts,
        };
        let batched: Vec<String> = File
            .run_many(&mut ctx, &args(many.path()))
            .expect("batched")
            .iter()
            .map(|o| shown(o, many.path()))
            .collect();
        assert_eq!(batched, one_by_one);
        assert_eq!(tree(many.path()), tree(one.path()));
        counting.execs
    }

    #[test]
    fn a_batch_of_directories_matches_one_by_one_in_two_execs() {
        let items = [
            r#"{"path": "{}/etc/nginx/sites", "state": "directory", "mode": "0755"}"#,
            r#"{"path": "{}/etc/app", "state": "directory", "mode": "0750"}"#,
            r#"{"path": "{}/srv/a 'b' $(x)/releases", "state": "directory", "mode": "u=rwx,g=rx,o="}"#,
            r#"{"path": "{}/run", "state": "directory"}"#,
            r#"{"path": "{}/log/app.log", "state": "touch", "mode": "0640", "modification_time": "preserve", "access_time": "preserve"}"#,
        ];
        let nothing = |_: &Path| {};
        // Created (with --diff), then converged, then in check mode from scratch.
        assert_eq!(same_as_one_by_one(&nothing, &items, false, true), 2);
        let existing = |root: &Path| {
            for d in [
                "etc/nginx/sites",
                "etc/app",
                "srv/a 'b' $(x)/releases",
                "run",
                "log",
            ] {
                std::fs::create_dir_all(root.join(d)).expect("mkdir");
            }
            std::fs::write(root.join("log/app.log"), "").expect("touch");
            std::fs::set_permissions(root.join("etc/app"), std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
        };
        assert_eq!(same_as_one_by_one(&existing, &items, false, true), 2);
        assert_eq!(same_as_one_by_one(&nothing, &items, true, true), 1);
        assert_eq!(same_as_one_by_one(&existing, &items, true, false), 1);
    }

    #[test]
    fn a_batch_whose_items_touch_each_others_paths_matches_one_by_one() {
        let nothing = |_: &Path| {};
        // The same path twice with other modes; a child, then its parent; then the child again.
        let items = [
            r#"{"path": "{}/a/b", "state": "directory", "mode": "0700"}"#,
            r#"{"path": "{}/a/b", "state": "directory", "mode": "0755"}"#,
            r#"{"path": "{}/a", "state": "directory", "mode": "0711"}"#,
            r#"{"path": "{}/c", "state": "directory", "mode": "0750"}"#,
            r#"{"path": "{}/a/b", "state": "absent"}"#,
        ];
        // Probe, changes up to the second item (found changed: stale), then 4 items alone.
        assert_eq!(same_as_one_by_one(&nothing, &items, false, true), 2 + 4 * 2);
        // Two names for one directory (through a symlink), and a path that is a link.
        let linked = |root: &Path| {
            std::fs::create_dir(root.join("real")).expect("mkdir");
            std::os::unix::fs::symlink(root.join("real"), root.join("alias")).expect("link");
            std::fs::write(root.join("f"), "").expect("file");
            std::os::unix::fs::symlink(root.join("f"), root.join("lf")).expect("link");
        };
        let items = [
            r#"{"path": "{}/alias/x", "state": "directory", "mode": "0700"}"#,
            r#"{"path": "{}/real/x", "state": "directory", "mode": "0755"}"#,
            r#"{"path": "{}/lf", "state": "file", "mode": "0600"}"#,
            r#"{"path": "{}/y", "state": "directory", "mode": "0750"}"#,
        ];
        // real/x was made through alias/x: stale, it and the rest alone.
        assert_eq!(same_as_one_by_one(&linked, &items, false, true), 2 + 3 * 2);
        // Check mode changes nothing: the batch stops at the link only.
        assert_eq!(same_as_one_by_one(&linked, &items, true, true), 1 + 2);
    }

    #[test]
    fn a_failing_item_in_a_batch_fails_as_alone_and_the_others_still_run() {
        let blocker = |root: &Path| std::fs::write(root.join("file"), "x").expect("file");
        let items = [
            r#"{"path": "{}/d1", "state": "directory", "mode": "0755"}"#,
            r#"{"path": "{}/file/sub", "state": "directory"}"#,
            r#"{"path": "{}/file", "state": "directory"}"#,
            r#"{"path": "{}/missing/f", "state": "file"}"#,
            r#"{"path": "{}/d2", "state": "directory", "mode": "0700"}"#,
        ];
        assert_eq!(same_as_one_by_one(&blocker, &items, false, true), 2);
    }

    #[test]
    fn items_the_batch_does_not_take_are_left_to_the_caller() {
        let mut host = LocalHost::new("t");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let map = |v: Value| match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        };
        let dir = json!({"path": "/tmp/x", "state": "directory"});
        let link = json!({"path": "/tmp/l", "src": "/tmp/x", "state": "link"});
        let bad = json!({"path": "/tmp/x", "state": "directory", "bogus": 1});
        assert!(File
            .run_many(&mut ctx, &[map(dir.clone()), map(link)])
            .is_none());
        assert!(File
            .run_many(&mut ctx, &[map(dir.clone()), map(bad)])
            .is_none());
        assert!(File.run_many(&mut ctx, &[map(dir)]).is_none());
    }

    #[test]
    fn directory_is_created_with_mode_on_every_new_component() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join(HOSTILE);
        let path = top.join("sub dir");
        let args = json!({"path": s(&path), "state": "directory", "mode": "0700"});

        let out = check(args.clone());
        assert!(out.changed && !out.failed);
        assert!(!top.exists(), "check mode creates nothing");

        let out = run(args.clone());
        assert!(out.changed && !out.failed, "{out:?}");
        assert!(path.is_dir());
        assert_eq!((mode_of(&top), mode_of(&path)), (0o700, 0o700));
        assert_eq!(out.result["mode"], json!("0700"));
        assert_eq!(out.result["state"], json!("directory"));
        assert_eq!(out.result["path"], json!(s(&path)));
        let diff = &out.diffs[0];
        assert!(diff.before.contains("\"state\": \"absent\""));
        assert!(diff.after.contains("\"state\": \"directory\""));

        let out = run(args);
        assert!(!out.changed && out.diffs.is_empty());
    }

    #[test]
    fn mode_owner_and_group_changes_are_planned_then_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(HOSTILE);
        std::fs::write(&path, b"x").expect("write");
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o644)).expect("chmod");
        let uid = std::fs::metadata(&path).expect("meta").uid();
        let args = json!({"path": s(&path), "mode": "u=rw,go=", "owner": uid});

        let out = check(args.clone());
        assert!(out.changed);
        assert_eq!(mode_of(&path), 0o644, "check mode changes nothing");
        assert_eq!(
            out.result["mode"],
            json!("0644"),
            "check mode reports the current state"
        );

        let out = run(args.clone());
        assert!(out.changed);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(out.result["mode"], json!("0600"));
        assert_eq!(
            out.diffs[0].after,
            format!(
                "{{\n    \"mode\": \"0600\",\n    \"path\": {}\n}}\n",
                serde_json::to_string(&s(&path)).expect("json")
            )
        );
        assert!(!run(args).changed);
    }

    #[test]
    fn symlinks_are_created_retargeted_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join(HOSTILE);
        std::fs::write(&target, b"x").expect("write");
        let link = dir.path().join("link 'l'");
        let args = json!({"path": s(&link), "src": HOSTILE, "state": "link"});

        let out = check(args.clone());
        assert!(out.changed);
        assert!(std::fs::symlink_metadata(&link).is_err());

        let out = run(args.clone());
        assert!(out.changed, "{out:?}");
        assert_eq!(std::fs::read_link(&link).expect("link"), Path::new(HOSTILE));
        assert_eq!(out.result["dest"], json!(s(&link)));
        assert_eq!(out.result["src"], json!(HOSTILE));
        assert_eq!(out.result["state"], json!("link"));
        assert!(!run(args).changed);

        std::fs::create_dir(dir.path().join("other")).expect("mkdir");
        let out = run(json!({"path": s(&link), "src": "other", "state": "link"}));
        assert!(out.changed);
        assert_eq!(std::fs::read_link(&link).expect("link"), Path::new("other"));
        assert!(out.diffs[0].before.contains(&format!(
            "\"src\": {}",
            serde_json::to_string(HOSTILE).expect("json")
        )));
        // Retargeting a link to a directory replaces the link, not something inside it.
        let out = run(json!({"path": s(&link), "src": HOSTILE, "state": "link"}));
        assert!(out.changed);
        assert_eq!(std::fs::read_link(&link).expect("link"), Path::new(HOSTILE));
        assert_eq!(
            std::fs::read_dir(dir.path().join("other"))
                .expect("ls")
                .count(),
            0
        );
    }

    #[test]
    fn symlink_refusals_use_ansibles_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = s(dir.path());
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let out = run(json!({"path": format!("{d}/l"), "src": "missing", "state": "link"}));
        assert_eq!(
            out.msg,
            Some(format!(
                "src file does not exist, use 'force=yes' if you really want to create the link: {d}/missing"
            ))
        );
        let out = run(json!({"path": format!("{d}/f"), "src": "f", "state": "link"}));
        assert_eq!(
            out.msg,
            Some(format!(
                "refusing to convert from file to symlink for {d}/f"
            ))
        );
        assert_eq!(
            out.result["mode"],
            json!("0644"),
            "failures carry path info"
        );
        let out = run(json!({"path": format!("{d}/l"), "state": "link"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("src is required for creating new symlinks")
        );
        let out = run(
            json!({"path": format!("{d}/l"), "src": "missing", "state": "link", "force": true}),
        );
        assert!(out.changed && !out.failed);
        let out =
            run(json!({"path": format!("{d}/f"), "src": "l", "state": "link", "force": true}));
        assert!(out.changed && !out.failed);
        assert_eq!(
            std::fs::read_link(dir.path().join("f")).expect("link"),
            Path::new("l")
        );
    }

    #[test]
    fn hard_links_share_the_inode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join(HOSTILE);
        std::fs::write(&src, b"x").expect("write");
        let other = dir.path().join("other");
        std::fs::write(&other, b"y").expect("write");
        let dest = dir.path().join("hard 'h'");
        let args = json!({"path": s(&dest), "src": s(&src), "state": "hard"});

        assert!(check(args.clone()).changed);
        assert!(!dest.exists());
        let out = run(args.clone());
        assert!(out.changed, "{out:?}");
        let ino = |p: &Path| std::fs::metadata(p).expect("meta").ino();
        assert_eq!(ino(&dest), ino(&src));
        assert_eq!(out.result["state"], json!("hard"));
        assert!(!run(args).changed);

        let out = run(json!({"path": s(&dest), "src": s(&other), "state": "hard"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("Cannot link, different hard link exists at destination")
        );
        let out = run(json!({"path": s(&dest), "src": s(&other), "state": "hard", "force": true}));
        assert!(out.changed && !out.failed);
        assert_eq!(ino(&dest), ino(&other));
        let out = run(
            json!({"path": s(&dest), "src": format!("{}/nope", s(dir.path())), "state": "hard"}),
        );
        assert_eq!(out.msg.as_deref(), Some("src does not exist"));
    }

    #[test]
    fn touch_changes_every_run_unless_times_are_preserved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(HOSTILE);
        let args = json!({"path": s(&path), "state": "touch", "mode": "0640"});
        assert!(check(args.clone()).changed);
        assert!(!path.exists());
        let out = run(args.clone());
        assert!(out.changed && path.is_file());
        assert_eq!(mode_of(&path), 0o640);
        assert_eq!(out.result["dest"], json!(s(&path)));
        assert!(run(args).changed, "touch always changes");
        let preserve = json!({"path": s(&path), "state": "touch",
            "access_time": "preserve", "modification_time": "preserve"});
        assert!(!run(preserve).changed);
    }

    #[test]
    fn formatted_times_are_set_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(HOSTILE);
        std::fs::write(&path, b"x").expect("write");
        let args = json!({"path": s(&path), "modification_time": "2020-01-02 03:04",
            "modification_time_format": "%Y-%m-%d %H:%M"});
        assert!(check(args.clone()).changed);
        let out = run(args.clone());
        assert!(out.changed);
        let mtime = std::fs::metadata(&path).expect("meta").mtime();
        let expected = Cmd::argv(&["date", "-d", "2020-01-02 03:04:00", "+%s"]);
        let expected = LocalHost::new("l")
            .exec(&expected)
            .expect("date")
            .stdout_str();
        assert_eq!(mtime.to_string(), expected.trim());
        assert!(!run(args).changed);
        let out = run(json!({"path": s(&path), "modification_time": "2020"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("Error while obtaining timestamp for time 2020 using format %Y%m%d%H%M.%S: time data '2020' does not match format '%Y%m%d%H%M.%S'")
        );
    }

    #[test]
    fn absent_removes_files_and_trees() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join(HOSTILE);
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        std::fs::write(tree.join("sub").join("f"), b"x").expect("write");
        let args = json!({"path": s(&tree), "state": "absent"});
        let out = check(args.clone());
        assert!(out.changed && tree.exists());
        assert!(out.diffs[0].before.contains("path_content"));
        let out = run(args.clone());
        assert!(out.changed && !tree.exists());
        assert_eq!(out.result["state"], json!("absent"));
        let out = run(args);
        assert!(!out.changed);
        assert_eq!(out.result["path"], json!(s(&tree)));
    }

    #[test]
    fn recurse_applies_below_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").expect("write");
        std::fs::set_permissions(&outside, PermissionsExt::from_mode(0o644)).expect("chmod");
        let tree = dir.path().join(HOSTILE);
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        std::fs::write(tree.join("sub").join("f"), b"x").expect("write");
        std::os::unix::fs::symlink(&outside, tree.join("link")).expect("symlink");
        let args = json!({"path": s(&tree), "recurse": true, "mode": "u=rwX,go="});
        assert!(check(args.clone()).changed);
        assert_eq!(mode_of(&tree.join("sub").join("f")), 0o644);
        assert!(run(args.clone()).changed);
        assert_eq!(mode_of(&tree.join("sub")), 0o700);
        assert_eq!(mode_of(&tree.join("sub").join("f")), 0o600);
        assert_eq!(
            mode_of(&outside),
            0o644,
            "links inside the tree are not followed"
        );
        assert!(!run(args).changed);
    }

    #[test]
    fn argument_and_state_errors_use_ansibles_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = s(dir.path());
        let out = run(json!({"path": format!("{d}/nope")}));
        assert_eq!(
            out.msg,
            Some(format!("file ({d}/nope) is absent, cannot continue"))
        );
        assert_eq!(out.result["state"], json!("absent"));
        let out = run(json!({"path": &d, "state": "file"}));
        assert_eq!(
            out.msg,
            Some(format!("file ({d}) is directory, cannot continue"))
        );
        let out = run(json!({"path": &d, "recurse": true, "state": "touch"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("recurse option requires state to be 'directory'")
        );
        let out = run(json!({"path": &d, "src": "/x", "state": "directory"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("src option requires state to be 'link' or 'hard'")
        );
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let out = run(json!({"path": format!("{d}/f"), "state": "directory"}));
        assert_eq!(out.msg, Some(format!("{d}/f already exists as a file")));
        let out = run(json!({"path": format!("{d}/f"), "owner": "no such user"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("chown failed: failed to look up user no such user")
        );
        let err = run_with(json!({"path": &d, "mode": "u=bogus"}), false, false).expect_err("bad");
        assert_eq!(err.to_string(), "mode must be in octal or symbolic form");
        let err = run_with(json!({"path": &d, "state": "present"}), false, false).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "value of state must be one of: absent, directory, file, hard, link, touch, got: present"
        );
    }

    #[test]
    fn existing_directory_gets_the_original_basename() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("base"), b"x").expect("write");
        let out = run(json!({"path": s(dir.path()), "_original_basename": "base", "mode": "0600"}));
        assert_eq!(out.result["path"], json!(format!("{}/base", s(dir.path()))));
        assert_eq!(mode_of(&dir.path().join("base")), 0o600);
    }

    #[test]
    fn strptime_reads_pythons_formats() {
        let t = strptime("202001011200.30", "%Y%m%d%H%M.%S").expect("parses");
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2020, 1, 1, 12, 0, 30)
        );
        let t = strptime("Mar  5 99 07:15PM", "%b %d %y %I:%M%p").expect("parses");
        assert_eq!((t.year, t.month, t.day, t.hour), (1999, 3, 5, 19));
        assert_eq!(
            strptime("2020x", "%Y"),
            Err("unconverted data remains: x".to_string())
        );
        assert_eq!(
            strptime("20201301", "%Y%m%d"),
            Err("time data '20201301' does not match format '%Y%m%d'".to_string())
        );
    }
}
