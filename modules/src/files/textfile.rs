//! Reading and rewriting one text file on the target for lineinfile, blockinfile and replace:
//! what is particular to editing text. The state and the raw content (bytes that are not
//! UTF-8 kept) in one exec, the `(content)` and `(file attributes)` diffs, and
//! validate-then-write through `Host::put`. Modes, owner/group plans, backups and stat
//! parsing are `files::common`'s; nothing in here knows which module uses it.
//!
//! Round trips: `read` is one exec. `write` is one `Host::put`, preceded by one exec only
//! when something must happen first (a backup, missing parent directories, validation —
//! which also puts the candidate into /tmp first). `apply_attrs` is one exec.
//! Mode, owner and group are applied to the resolved path (through symlinks).
//! Deliberate difference: the attributes diff shows owners/groups as `common` plans them
//! (the old name, the asked name or id); Ansible shows numeric ids on both sides.

use super::common::{
    attr_failure_msg, backup_failure_msg, parent_dir, state_diff, AttrPlan, FileKind, PathStat,
    Records, StatResult, Validate, WantAttrs, PRELUDE,
};
use crate::cmd::Script;
use crate::{Cmd, Ctx, FileAttrs, FileDiff, HostError, Map, ModuleError, Outcome};

/// What the target has at a path, read in one exec.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFile {
    /// The path with a leading `~` expanded on the target (the `path` Ansible reports).
    pub path: String,
    /// Where writes go: `path` with symlinks resolved, as Ansible writes through links.
    pub real_path: String,
    pub kind: Kind,
    /// The file's stat (through symlinks); for a missing file or a directory, what a file
    /// the remote user created now would have (umask default mode, the user's ids).
    pub stat: PathStat,
    pub content: Vec<u8>,
    /// The remote user, for deciding which ownership a rewrite can keep.
    pub user: RemoteUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Missing { parent_exists: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
}

impl TextFile {
    pub fn exists(&self) -> bool {
        self.kind == Kind::File
    }
}

/// The one script that reads everything, as `files::common` records: `path` (`~` expanded),
/// `kind`, the remote user's `umask uid gid groups` and, when there is no file yet, the
/// `user` and `group` names a new one gets; for a file its resolved path `real` (`readlink`
/// only for a symlink or a relative path: other paths already name the file), its stat `st`
/// and, raw after `__rest content`, its bytes. No other process starts for an existing file
/// than `stat` and `cat`.
fn read_script(path: &str) -> Script {
    Script::new().raw(PRELUDE).set("p", path).raw(
        "\n__tilde \"$p\"; p=$__o\n\
         if [ -d \"$p\" ]; then k=dir; elif [ -e \"$p\" ]; then k=file; \
         else case $p in */*) dir=${p%/*}; dir=${dir:-/};; *) dir=.;; esac; \
         if [ -d \"$dir\" ]; then k=missing; else k=orphan; fi; fi\n\
         __kv path \"$p\"; __kv kind \"$k\"; __kumask; __kids\n\
         if [ \"$k\" != file ]; then __kv user \"$(id -un 2>/dev/null)\"; __kv group \"$(id -gn 2>/dev/null)\"; exit 0; fi\n\
         r=; case $p in /*) [ -L \"$p\" ] || r=$p;; esac\n\
         [ -n \"$r\" ] || { r=$(readlink -f -- \"$p\" 2>/dev/null && echo x) && r=${r%??} || r=$p; }\n\
         __kv real \"$r\"; __kst st \"$r\"\n\
         __rest content; exec cat -- \"$r\"\n",
    )
}

/// Read the file at `path` (one exec). A path that cannot be read, or is a directory, fails
/// the task (as opposed to a lost host): `Ok(Err(outcome))`, with Ansible's message for a
/// directory, which all three editors share.
pub fn read(ctx: &mut Ctx<'_>, path: &str) -> Result<Result<TextFile, Outcome>, ModuleError> {
    let out = ctx.host.exec(&Cmd::script(read_script(path)))?;
    if !out.success() {
        return Ok(Err(Outcome::failed(format!(
            "Unable to read {path}: {}",
            out.stderr_str().trim()
        ))));
    }
    Ok(match parse_read_output(&out.stdout) {
        Ok(file) if file.kind == Kind::Directory => {
            Err(Outcome::failed(format!("Path {path} is a directory !")).with("rc", 256))
        }
        Ok(file) => Ok(file),
        Err(why) => Err(Outcome::failed(format!("Unable to read {path}: {why}"))),
    })
}

/// The failure for content `pyre::decode` cannot hold as text (it could not be written back
/// byte for byte).
pub fn undecodable(path: &str) -> Outcome {
    Outcome::failed(format!(
        "{path} mixes bytes that are not UTF-8 with characters U+10FF80..U+10FFFF; it cannot be edited safely"
    ))
}

fn parse_read_output(stdout: &[u8]) -> Result<TextFile, String> {
    let r = Records::parse(stdout);
    let field = |key: &str| {
        r.get(key)
            .ok_or_else(|| format!("unexpected output from the target: no {key}"))
    };
    let number = |key: &str| {
        field(key)?
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("unexpected output from the target: {key}"))
    };
    let user = RemoteUser {
        uid: number("uid")?,
        gid: number("gid")?,
        // No `Groups:` line (or none at all): no supplementary groups.
        groups: r
            .get("groups")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
        umask: r.umask(),
    };
    let path = field("path")?.to_string();
    // A name that is only the id again (or none at all) is no name, as `__st` reads them.
    let name = |key: &str, id: u32| {
        r.get(key)
            .filter(|n| !n.is_empty() && *n != id.to_string())
            .map(str::to_string)
    };
    let new_file = PathStat {
        kind: FileKind::File,
        perm: 0o666 & !user.umask,
        uid: user.uid,
        gid: user.gid,
        owner: name("user", user.uid),
        group: name("group", user.gid),
        nlink: 1,
        ..PathStat::default()
    };
    let missing = |parent_exists| TextFile {
        real_path: path.clone(),
        path: path.clone(),
        kind: Kind::Missing { parent_exists },
        stat: new_file.clone(),
        content: Vec::new(),
        user: user.clone(),
    };
    match field("kind")? {
        "dir" => Ok(TextFile {
            kind: Kind::Directory,
            ..missing(true)
        }),
        "missing" => Ok(missing(true)),
        "orphan" => Ok(missing(false)),
        "file" => {
            let stat = match r.stat("st") {
                StatResult::Present(st) => st,
                StatResult::Absent => return Err("No such file or directory".into()),
                StatResult::Error(why) => return Err(why),
            };
            Ok(TextFile {
                real_path: field("real")?.to_string(),
                kind: Kind::File,
                stat,
                content: r.rest("content").unwrap_or_default().to_vec(),
                ..missing(true)
            })
        }
        other => Err(format!("unexpected output from the target: kind {other}")),
    }
}

/// Ansible's `(file attributes)` diff of the text editors: the keys `plan` changes,
/// before and after (`None` for an empty plan).
pub fn attrs_diff(path: &str, plan: &AttrPlan) -> Option<FileDiff> {
    let (mut before, mut after) = (Map::new(), Map::new());
    plan.diff_into(&mut before, &mut after);
    let header = format!("{path} (file attributes)");
    state_diff(&before, &after).map(|d| FileDiff {
        before_header: header.clone(),
        after_header: header,
        ..d
    })
}

/// Ansible's suffix for a task whose attributes changed: `line added and ownership, ...`.
pub fn attrs_message(msg: &str, content_changed: bool) -> String {
    let suffix = "ownership, perms or SE linux context changed";
    if content_changed {
        format!("{msg} and {suffix}")
    } else {
        format!("{msg}{suffix}")
    }
}

/// How the new content is written.
#[derive(Debug, Clone)]
pub struct WriteOptions<'a> {
    pub backup: bool,
    pub validate: Option<&'a Validate>,
    pub want: &'a WantAttrs,
}

/// A write the target refused: the task fails with this message.
pub type WriteFailure = String;

/// Replace the file's content with `content` (never half-written: `Host::put` renames a
/// complete temp file into place). Keeps the file's mode and, where the remote user may,
/// its owner and group, unless `mode`/`owner`/`group` say otherwise. Validation runs on a
/// copy first; a backup is taken only once validation passed. Returns the backup's path.
pub fn write(
    ctx: &mut Ctx<'_>,
    file: &TextFile,
    content: &[u8],
    opts: &WriteOptions<'_>,
) -> Result<Result<Option<String>, WriteFailure>, ModuleError> {
    let mut prepare = Script::new();
    if let Some(validate) = opts.validate {
        // A temp path of plain characters in /tmp (as Ansible validates a copy in its own
        // temp dir), so `%s` inside a validator's own `sh -c '... %s'` cannot be broken by
        // a hostile destination name.
        let tmp = format!(
            "/tmp/.play-validate-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        if let Err(e) = put(
            ctx,
            content,
            &tmp,
            &FileAttrs {
                mode: Some(0o600),
                ..FileAttrs::default()
            },
        )? {
            return Ok(Err(e));
        }
        prepare = prepare
            .set("t", &tmp)
            .raw("\n")
            .cmd(&validate.argv(&tmp))
            .raw(">/dev/null; rc=$?; rm -f -- \"$t\"\n")
            .raw("if [ $rc -ne 0 ]; then __kv invalid \"$rc\"; exit 0; fi\n");
    }
    if let Kind::Missing {
        parent_exists: false,
    } = file.kind
    {
        prepare = prepare
            .raw("mkdir -p --")
            .arg(parent_dir(&file.path))
            .raw("|| exit 1\n");
    }
    if opts.backup && file.exists() {
        prepare = prepare
            .set("p", &file.path)
            .raw("\n__backup \"$p\" || __fail backup\n");
    }
    let mut backup = None;
    if !prepare.as_str().is_empty() {
        let out = ctx
            .host
            .exec(&Cmd::script(Script::new().raw(PRELUDE).then(prepare)))?;
        let r = Records::parse(&out.stdout);
        let stderr = out.stderr_str();
        if let Some(rc) = r.get("invalid") {
            return Ok(Err(format!("failed to validate: rc:{rc} error:{stderr}")));
        }
        if r.get("fail") == Some("backup") {
            return Ok(Err(backup_failure_msg(&file.path, &r, &stderr)));
        }
        if !out.success() {
            return Ok(Err(stderr.trim().to_string()));
        }
        backup = r.get("backup").map(str::to_string);
    }
    let attrs = write_attrs(file, opts.want).map_err(ModuleError::Args)?;
    if let Err(e) = put(ctx, content, &file.real_path, &attrs)? {
        return Ok(Err(e));
    }
    Ok(Ok(backup))
}

fn put(
    ctx: &mut Ctx<'_>,
    content: &[u8],
    dest: &str,
    attrs: &FileAttrs,
) -> Result<Result<(), WriteFailure>, ModuleError> {
    match ctx.host.put(content, dest, attrs) {
        Ok(()) => Ok(Ok(())),
        Err(HostError::Transfer(msg)) => Ok(Err(msg)),
        Err(e) => Err(e.into()),
    }
}

/// The attributes the rewritten file gets: what was asked, else what the old file had
/// (its owner and group only where the remote user can give them, as Ansible's
/// `atomic_move` silently keeps what it may).
fn write_attrs(file: &TextFile, want: &WantAttrs) -> Result<FileAttrs, String> {
    let current = &file.stat;
    let user = &file.user;
    let existing = file.exists();
    Ok(FileAttrs {
        mode: match &want.mode {
            Some(spec) => Some(spec.resolve(current.perm, false, user.umask)?),
            None if existing => Some(current.perm),
            None => None,
        },
        owner: want.owner.clone().or_else(|| {
            (existing && user.uid == 0 && current.uid != user.uid).then(|| current.uid.to_string())
        }),
        group: want.group.clone().or_else(|| {
            (existing
                && current.gid != user.gid
                && (user.uid == 0 || user.groups.contains(&current.gid)))
            .then(|| current.gid.to_string())
        }),
    })
}

/// Ansible's `check_file_attrs` after the content is settled: the owner/group/mode changes
/// `want` makes, applied here (one exec) only when the content stayed, since a rewrite
/// already gave the new file its attributes. In check mode a file still to be created
/// has none to report, as Ansible stops before them.
pub fn settle_attrs(
    ctx: &mut Ctx<'_>,
    file: &TextFile,
    want: &WantAttrs,
    content_changed: bool,
) -> Result<Result<AttrPlan, WriteFailure>, ModuleError> {
    if ctx.check && !file.exists() {
        return Ok(Ok(AttrPlan::default()));
    }
    let plan = want
        .plan(&file.stat, file.user.umask)
        .map_err(ModuleError::Args)?;
    if !plan.is_empty() && !content_changed && !ctx.check {
        if let Err(e) = apply_attrs(ctx, file, want, &plan)? {
            return Ok(Err(e));
        }
    }
    Ok(Ok(plan))
}

/// Apply `plan` (from `want`) to the file whose content stays, through symlinks (one exec).
fn apply_attrs(
    ctx: &mut Ctx<'_>,
    file: &TextFile,
    want: &WantAttrs,
    plan: &AttrPlan,
) -> Result<Result<(), WriteFailure>, ModuleError> {
    let script = Script::new()
        .raw(PRELUDE)
        .then(plan.script(&file.real_path));
    let out = ctx.host.exec(&Cmd::script(script))?;
    let stderr = out.stderr_str();
    if let Some(what) = Records::parse(&out.stdout).get("fail") {
        return Ok(Err(attr_failure_msg(what, want, &stderr)));
    }
    if !out.success() {
        return Ok(Err(stderr.trim().to_string()));
    }
    Ok(Ok(()))
}

/// The `(content)` diff Ansible's text modules show, from `pyre::decode`d text (bytes that
/// are not UTF-8 are shown as U+FFFD).
pub fn content_diff(path: &str, before: &str, after: &str) -> FileDiff {
    let lossy = |text: &str| String::from_utf8_lossy(&super::pyre::encode(text)).into_owned();
    let header = format!("{path} (content)");
    let mut d = crate::diff::file_diff(path, &lossy(before), &lossy(after));
    d.before_header = header.clone();
    d.after_header = header;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_output_is_parsed_with_hostile_paths_and_binary_content() {
        let mut out = b"path=/tmp/a b\n'c'\0kind=file\0umask=0022\0uid=1000\0gid=1000\0".to_vec();
        out.extend_from_slice(b"groups=1000 27\0user=me\0group=staff\0real=/real\nx\0");
        out.extend_from_slice(b"st=ok 81a0 0 4 5 1 7 2049 0 0 8 512 4096 1.0 1.0 1.0 root adm\0");
        out.extend_from_slice(b"~content\0line\n\xff\0z");
        let f = parse_read_output(&out).expect("parses");
        assert_eq!(f.path, "/tmp/a b\n'c'");
        assert_eq!(f.real_path, "/real\nx");
        assert_eq!(f.kind, Kind::File);
        assert_eq!(f.stat.perm, 0o640);
        assert_eq!((f.stat.owner.as_deref(), f.stat.gid), (Some("root"), 4));
        assert_eq!(f.content, b"line\n\xff\0z");
        assert_eq!(f.user.groups, vec![1000, 27]);
        let missing = parse_read_output(
            b"path=/x/y\0kind=orphan\0umask=0077\0uid=0\0gid=0\0groups=0\0user=root\0group=root\0",
        )
        .expect("parses");
        assert_eq!(
            missing.kind,
            Kind::Missing {
                parent_exists: false
            }
        );
        assert_eq!(missing.stat.perm, 0o600);
    }
}

/// Running a text module against a real file in a tempdir, for the three modules' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use crate::files::testkit::{run_on, CountingHost};
    use crate::local::LocalHost;
    use crate::{Map, Module, ModuleError, Outcome, Value};

    /// `args` (a JSON object) with `path` added.
    fn args_with_path(path: &str, args: &str) -> Map {
        let mut map: Map = serde_json::from_str(args).expect("test args are a JSON object");
        map.insert("path".into(), Value::from(path));
        map
    }

    /// Run like `run` and return (outcome, execs, puts).
    pub fn count_round_trips(
        module: &dyn Module,
        path: &str,
        args: &str,
    ) -> (Outcome, usize, usize) {
        let mut host = CountingHost::new();
        let outcome = run_on(&mut host, module, &args_with_path(path, args), false, true)
            .expect("module runs");
        (outcome, host.execs, host.puts)
    }

    /// Content before (None: missing), arguments, content after, Ansible's result.
    pub type RecordedCase = (
        Option<&'static [u8]>,
        &'static str,
        Option<&'static [u8]>,
        &'static str,
    );

    /// Run `module` once with `args` (a JSON object) on `path`.
    pub fn run(
        module: &dyn Module,
        path: &str,
        args: &str,
        check: bool,
        diff: bool,
    ) -> Result<Outcome, ModuleError> {
        let mut host = LocalHost::new("localhost");
        run_on(&mut host, module, &args_with_path(path, args), check, diff)
    }

    /// One case recorded from ansible-core 2.19: the file before (None: missing), the
    /// arguments, the file after, and the result Ansible printed (without `invocation`,
    /// `diff` and `warnings`). Runs the module and compares all of it.
    pub fn check_against_ansible(
        module: &dyn Module,
        case: usize,
        before: Option<&[u8]>,
        args: &str,
        after: Option<&[u8]>,
        expected: &str,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.txt");
        if let Some(before) = before {
            std::fs::write(&path, before).expect("write");
        }
        let path_str = path.to_str().expect("utf-8 path");
        let expected: Map = serde_json::from_str(&expected.replace("PATH", path_str))
            .expect("expected is a JSON object");
        let ours = match run(module, path_str, args, false, false) {
            Ok(outcome) => {
                let mut result = outcome.to_result();
                for key in ["failed", "warnings", "diff"] {
                    result.remove(key);
                }
                result
            }
            Err(e) => {
                let mut m = Map::new();
                m.insert("changed".into(), false.into());
                m.insert("msg".into(), e.to_string().into());
                m
            }
        };
        let mut ours_sorted: Vec<_> = ours.iter().collect();
        ours_sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut expected_sorted: Vec<_> = expected.iter().collect();
        expected_sorted.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(ours_sorted, expected_sorted, "case {case}: {args}");
        let on_disk = std::fs::read(&path).ok();
        assert_eq!(
            on_disk.as_deref().map(String::from_utf8_lossy),
            after.map(String::from_utf8_lossy),
            "case {case}: {args}"
        );
    }
}
