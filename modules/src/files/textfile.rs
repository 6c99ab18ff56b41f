//! Reading and rewriting one text file on the target for lineinfile, blockinfile and replace:
//! its state, mode, ownership and content in one exec; `mode`/`owner`/`group` arguments;
//! backup, validation and the atomic write.
//!
//! Written to be swapped for the shared `files::common` helpers later: nothing in here knows
//! which module uses it.
//!
//! Round trips: `read` is one exec. `write` is one `Host::put`, preceded by one exec only
//! when something must happen first (a backup, missing parent directories, validation —
//! which also puts the candidate into /tmp first). `apply_attrs` is one exec.
//! Mode, owner and group are applied to the resolved path (through symlinks).

use super::common::{
    backup_failure_msg, parent_dir, FileKind, PathStat, Records, StatResult, Validate, PRELUDE,
};
use crate::cmd::Script;
use crate::{Cmd, Ctx, FileAttrs, FileDiff, HostError, ModuleError, Value};

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
/// `kind`, the remote user's `umask uid gid groups user group`; then for a file its resolved
/// path `real`, its stat `st` and, raw after `__rest content`, its bytes.
fn read_script(path: &str) -> Script {
    Script::new().raw(PRELUDE).set("p", path).raw(
        "\n__tilde \"$p\"; p=$__o\n\
         if [ -d \"$p\" ]; then k=dir; elif [ -e \"$p\" ]; then k=file; \
         else case $p in */*) dir=${p%/*}; dir=${dir:-/};; *) dir=.;; esac; \
         if [ -d \"$dir\" ]; then k=missing; else k=orphan; fi; fi\n\
         __kv path \"$p\"; __kv kind \"$k\"; __kv umask \"$(umask)\"\n\
         __kv uid \"$(id -u)\"; __kv gid \"$(id -g)\"; __kv groups \"$(id -G)\"\n\
         __kv user \"$(id -un 2>/dev/null)\"; __kv group \"$(id -gn 2>/dev/null)\"\n\
         [ \"$k\" = file ] || exit 0\n\
         r=$(readlink -f -- \"$p\" 2>/dev/null && echo x) && r=${r%??} || r=$p\n\
         __kv real \"$r\"; __kv st \"$(__st \"$r\")\"\n\
         __rest content; exec cat -- \"$r\"\n",
    )
}

/// Why reading failed in a way the task reports (as opposed to a lost host).
pub type ReadFailure = String;

/// Read the file at `path` (one exec).
pub fn read(ctx: &mut Ctx<'_>, path: &str) -> Result<Result<TextFile, ReadFailure>, ModuleError> {
    let out = ctx.host.exec(&Cmd::script(read_script(path)))?;
    if !out.success() {
        return Ok(Err(format!(
            "Unable to read {path}: {}",
            out.stderr_str().trim()
        )));
    }
    Ok(parse_read_output(&out.stdout).map_err(|why| format!("Unable to read {path}: {why}")))
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
        groups: field("groups")?
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

/// A `mode` argument as Ansible accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    /// Permission bits: an integer from YAML (`0644` is 420) or an octal string.
    Bits(u32),
    /// `u=rw,g=r,o=r`, `u+x`, `a-w`...: applied to the current mode.
    Symbolic(String),
}

/// Parse `mode` as Ansible does: an int is the bits themselves, a string is octal when it
/// reads as octal (`"0644"`, `"644"`, `"0o644"`), else symbolic.
pub fn parse_mode(value: &Value) -> Result<ModeSpec, ModuleError> {
    let bits = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            if !digits.is_empty() && digits.chars().all(|c| c.is_digit(8)) {
                u64::from_str_radix(digits, 8).ok()
            } else {
                symbolic_mode(s, 0o644, false, 0o022).map_err(|e| {
                    ModuleError::Args(format!("mode must be in octal or symbolic form: {e}"))
                })?;
                return Ok(ModeSpec::Symbolic(s.clone()));
            }
        }
        _ => None,
    };
    match bits {
        Some(bits) if bits <= 0o7777 => Ok(ModeSpec::Bits(bits as u32)),
        Some(bits) => Err(ModuleError::Args(format!(
            "Invalid mode supplied, only permission info is allowed: {bits:o}"
        ))),
        None => Err(ModuleError::Args(
            "mode must be in octal or symbolic form".into(),
        )),
    }
}

impl ModeSpec {
    /// The permission bits this spec gives a file whose mode is now `current`.
    pub fn resolve(&self, current: u32, umask: u32) -> u32 {
        match self {
            ModeSpec::Bits(bits) => *bits,
            // Validated by `parse_mode`, so the fallback is never taken.
            ModeSpec::Symbolic(s) => symbolic_mode(s, current, false, umask).unwrap_or(current),
        }
    }
}

/// chmod's symbolic modes with Ansible's rules (`_symbolic_mode_to_octal`): clauses split on
/// `,`; no "who" means `a` with the umask's bits left alone; `X` counts only for directories
/// or files that already have an x bit; `u`/`g`/`o` on the right copy those bits.
pub fn symbolic_mode(spec: &str, current: u32, is_dir: bool, umask: u32) -> Result<u32, String> {
    let mut mode = current & 0o7777;
    for clause in spec.split(',') {
        let bad = || format!("bad symbolic permission for mode: {clause}");
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let who = &clause[..op_at];
        if !who.chars().all(|c| "ugoa".contains(c)) {
            return Err(bad());
        }
        let use_umask = who.is_empty();
        let who: String = if who.is_empty() || who.contains('a') {
            "ugo".into()
        } else {
            who.into()
        };
        // Operators and the permission lists that follow each of them.
        let mut ops: Vec<(char, String)> = Vec::new();
        for c in clause[op_at..].chars() {
            match c {
                '+' | '-' | '=' => ops.push((c, String::new())),
                'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o' => {
                    if let Some((_, perms)) = ops.last_mut() {
                        perms.push(c);
                    }
                }
                _ => return Err(bad()),
            }
        }
        for (op, perms) in &ops {
            for user in who.chars() {
                let bits = symbolic_bits(user, perms, mode, is_dir, use_umask, umask);
                mode = match op {
                    '=' => {
                        let mask = match user {
                            'u' => 0o4700,
                            'g' => 0o2070,
                            _ => 0o1007,
                        };
                        (mode & !mask & 0o7777) | bits
                    }
                    '+' => mode | bits,
                    _ => mode & !bits,
                };
            }
        }
    }
    Ok(mode)
}

fn symbolic_bits(
    user: char,
    perms: &str,
    prev: u32,
    is_dir: bool,
    use_umask: bool,
    umask: u32,
) -> u32 {
    let shift = match user {
        'u' => 6,
        'g' => 3,
        _ => 0,
    };
    let rev_umask = !umask & 0o7777;
    let masked = |bit: u32| if use_umask { bit & rev_umask } else { bit };
    let apply_x = is_dir || prev & 0o111 != 0;
    perms.chars().fold(0, |acc, p| {
        acc | match p {
            'r' => masked(0o4 << shift),
            'w' => masked(0o2 << shift),
            'x' => masked(0o1 << shift),
            'X' if apply_x => 0o1 << shift,
            's' if user == 'u' => 0o4000,
            's' if user == 'g' => 0o2000,
            't' if user == 'o' => 0o1000,
            'u' => ((prev >> 6) & 0o7) << shift,
            'g' => ((prev >> 3) & 0o7) << shift,
            'o' => (prev & 0o7) << shift,
            _ => 0,
        }
    })
}

/// `mode`, `owner` and `group` as the task asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedAttrs {
    pub mode: Option<ModeSpec>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl WantedAttrs {
    pub fn parse(
        mode: Option<&Value>,
        owner: Option<String>,
        group: Option<String>,
    ) -> Result<Self, ModuleError> {
        Ok(Self {
            mode: match mode {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_mode(v)?),
            },
            owner: owner.filter(|o| !o.is_empty()),
            group: group.filter(|g| !g.is_empty()),
        })
    }

    /// What differs between `current` and what was asked: (mode, owner, group) to set.
    pub fn changes(&self, current: &PathStat, umask: u32) -> AttrChanges {
        let mode = self
            .mode
            .as_ref()
            .map(|m| m.resolve(current.perm, umask))
            .filter(|m| *m != current.perm);
        let differs = |wanted: &Option<String>, name: &str, id: u32| {
            wanted.clone().filter(|w| w != name && *w != id.to_string())
        };
        AttrChanges {
            mode,
            owner: differs(&self.owner, &current.owner_name(), current.uid),
            group: differs(&self.group, &current.group_name(), current.gid),
        }
    }
}

/// Attributes that must change, each `None` when it already is as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrChanges {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl AttrChanges {
    pub fn any(&self) -> bool {
        self.mode.is_some() || self.owner.is_some() || self.group.is_some()
    }

    /// Ansible's `(file attributes)` diff: the changed attributes before and after, as the
    /// callback prints such dicts (sorted JSON, 4-space indent).
    pub fn diff(&self, path: &str, current: &PathStat) -> FileDiff {
        let mut before = serde_json::Map::new();
        let mut after = serde_json::Map::new();
        if let Some(group) = &self.group {
            before.insert("group".into(), current.group_name().into());
            after.insert("group".into(), group.clone().into());
        }
        if let Some(mode) = self.mode {
            before.insert("mode".into(), format!("0{:03o}", current.perm).into());
            after.insert("mode".into(), format!("0{mode:03o}").into());
        }
        if let Some(owner) = &self.owner {
            before.insert("owner".into(), current.owner_name().into());
            after.insert("owner".into(), owner.clone().into());
        }
        let header = format!("{path} (file attributes)");
        FileDiff {
            before_header: header.clone(),
            after_header: header,
            before: pretty_json(&before),
            after: pretty_json(&after),
        }
    }
}

fn pretty_json(map: &serde_json::Map<String, Value>) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    if map.serialize(&mut ser).is_err() {
        return String::new();
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    text.push('\n');
    text
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
    pub wanted: &'a WantedAttrs,
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
    let attrs = write_attrs(file, opts.wanted);
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
fn write_attrs(file: &TextFile, wanted: &WantedAttrs) -> FileAttrs {
    let current = &file.stat;
    let user = &file.user;
    let existing = file.exists();
    FileAttrs {
        mode: match &wanted.mode {
            Some(spec) => Some(spec.resolve(current.perm, user.umask)),
            None if existing => Some(current.perm),
            None => None,
        },
        owner: wanted.owner.clone().or_else(|| {
            (existing && user.uid == 0 && current.uid != user.uid).then(|| current.uid.to_string())
        }),
        group: wanted.group.clone().or_else(|| {
            (existing
                && current.gid != user.gid
                && (user.uid == 0 || user.groups.contains(&current.gid)))
            .then(|| current.gid.to_string())
        }),
    }
}

/// Set mode/owner/group on an existing file whose content stays (one exec).
pub fn apply_attrs(
    ctx: &mut Ctx<'_>,
    path: &str,
    changes: &AttrChanges,
) -> Result<Result<(), WriteFailure>, ModuleError> {
    let mut script = Script::new();
    if let Some(owner) = &changes.owner {
        script = script
            .raw("chown --")
            .arg(owner)
            .arg(path)
            .raw("|| { echo 'chown failed' >&3; exit 1; }\n");
    }
    if let Some(group) = &changes.group {
        script = script
            .raw("chgrp --")
            .arg(group)
            .arg(path)
            .raw("|| { echo 'chgrp failed' >&3; exit 1; }\n");
    }
    if let Some(mode) = changes.mode {
        script = script
            .raw("chmod --")
            .arg(format!("{mode:o}"))
            .arg(path)
            .raw("|| { echo 'chmod failed' >&3; exit 1; }\n");
    }
    let script = Script::new().raw("exec 3>&1\n").then(script);
    let out = ctx.host.exec(&Cmd::script(script))?;
    if out.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{}: {}",
            out.stdout_str().trim(),
            out.stderr_str().trim()
        )))
    }
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
    fn octal_and_integer_modes_parse_like_ansible() {
        let parse = |v: Value| parse_mode(&v).map_err(|e| e.to_string());
        assert_eq!(parse(Value::from(420)), Ok(ModeSpec::Bits(0o644)));
        assert_eq!(parse(Value::from("0644")), Ok(ModeSpec::Bits(0o644)));
        assert_eq!(parse(Value::from("755")), Ok(ModeSpec::Bits(0o755)));
        assert_eq!(parse(Value::from("0o600")), Ok(ModeSpec::Bits(0o600)));
        assert_eq!(
            parse(Value::from("u=rw,g=r")),
            Ok(ModeSpec::Symbolic("u=rw,g=r".into()))
        );
        assert!(parse(Value::from("rwx")).is_err());
        assert!(parse(Value::from(0o17777)).is_err());
    }

    #[test]
    fn symbolic_modes_follow_chmod() {
        let sym = |s: &str, cur: u32| symbolic_mode(s, cur, false, 0o022);
        assert_eq!(sym("u=rw,g=r,o=r", 0o777), Ok(0o644));
        assert_eq!(sym("u+x", 0o644), Ok(0o744));
        assert_eq!(sym("a-w", 0o664), Ok(0o444));
        assert_eq!(sym("go=", 0o755), Ok(0o700));
        assert_eq!(sym("+w", 0o444), Ok(0o644), "no who: umask bits stay");
        assert_eq!(sym("g=u", 0o640), Ok(0o660));
        assert_eq!(sym("a+X", 0o644), Ok(0o644), "X needs an x bit already");
        assert_eq!(sym("a+X", 0o744), Ok(0o755));
        assert_eq!(sym("u+s,o+t", 0o755), Ok(0o5755));
        assert_eq!(sym("u=rwx-x", 0o000), Ok(0o600));
        assert!(sym("z=r", 0o644).is_err());
        assert!(sym("u=q", 0o644).is_err());
    }

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
    use crate::local::LocalHost;
    use crate::Value;
    use crate::{Cmd, Ctx, FileAttrs, Host, HostError, Map, Module, ModuleError, Outcome, Output};

    /// A local host that counts round trips.
    pub struct CountingHost {
        inner: LocalHost,
        pub execs: usize,
        pub puts: usize,
    }

    impl Host for CountingHost {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
            self.execs += 1;
            self.inner.exec(cmd)
        }
        fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
            self.puts += 1;
            self.inner.put(data, dest, attrs)
        }
        fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
            self.execs += 1;
            self.inner.get(path)
        }
    }

    /// Run like `run` and return (outcome, execs, puts).
    pub fn count_round_trips(
        module: &dyn Module,
        path: &str,
        args: &str,
    ) -> (Outcome, usize, usize) {
        let mut map: Map = serde_json::from_str(args).expect("test args are a JSON object");
        map.insert("path".into(), Value::from(path));
        let facts = Map::new();
        let mut host = CountingHost {
            inner: LocalHost::new("localhost"),
            execs: 0,
            puts: 0,
        };
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: true,
            facts: &facts,
        };
        let outcome = module.run(&mut ctx, &map).expect("module runs");
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
        let mut map: Map = serde_json::from_str(args).expect("test args are a JSON object");
        map.insert("path".into(), Value::from(path));
        let facts = Map::new();
        let mut host = LocalHost::new("localhost");
        let mut ctx = Ctx {
            host: &mut host,
            check,
            diff,
            facts: &facts,
        };
        module.run(&mut ctx, &map)
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
