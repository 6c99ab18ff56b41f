//! Shared machinery of the file modules (copy, file, stat, find, slurp, tempfile, and the
//! text editors lineinfile/blockinfile/replace): one-exec state probes, mode parsing,
//! owner/group/mode changes, backups, checksums, and Ansible-shaped results and diffs.
//!
//! # API
//!
//! ## Probing the target in one exec
//! Start a script with [`PRELUDE`] (`Script::new().raw(PRELUDE)`); it defines these shell
//! functions, whose output [`Records::parse`] reads back (records are `KEY=VALUE\0`, so a
//! value may hold anything but NUL):
//! - `__kv KEY VALUE`: one record.
//! - `__kvc KEY CMD ARGS...`: run a command, record its output exactly (one trailing newline dropped).
//! - `__kst KEY PATH` / `__kstL KEY PATH`: lstat / stat (following links) of PATH as KEY's
//!   record, one line for [`StatResult::parse`]: `__kst st "$p"`, then `records.stat("st")`.
//!   `__stv PATH` / `__stLv PATH` set `__o` to that line; `__st` / `__stL` print it.
//! - `__sumv CMD PATH`: `__o` = checksum of a regular, readable file (CMD from
//!   [`ChecksumAlgo::command`]), empty otherwise; `__sum` prints it.
//! - `__kumask`: the umask as the `umask` record.
//! - `__kids`: the effective `uid`, `gid` and the supplementary `groups` (space-separated)
//!   as records, read from `/proc/self/status` by the shell itself (`id` where there is none).
//!
//! Every command substitution forks the shell, and on the target that is what a converged
//! task costs besides the tools it runs: helpers that set `__o` or print records themselves
//! keep it to one fork per tool (the one that execs it).
//! - `__acc PATH`: the connecting user's access as three flags (`rw-`): `records.get("acc")`.
//! - `__rest KEY`: everything printed after it is KEY's raw bytes ([`Records::rest`]); for
//!   file contents, which may hold NULs. Use it last.
//! - `__backup PATH`: copy PATH (`cp -p`) to Ansible's `PATH.PID.YYYY-MM-DD@HH:MM:SS~` (PID:
//!   the process running the script, which `$$` need not be: scripts may run in a subshell),
//!   recording `backup=THAT` first (so a failure can name it, see [`backup_failure_msg`]);
//!   fails (status 1) if the copy fails.
//! - `__fail WHAT`: record `fail=WHAT` and exit 1 (the failed command's stderr stays in stderr).
//! - `__tilde PATH`: sets `__o` to PATH with a leading `~` made `$HOME` (Ansible expands
//!   `path` arguments on the target): `__tilde "$p"; p=$__o`.
//! - `__tree [-L] ROOT FIND-ARGS...`: every entry `find` selects, as records `f=PATH` followed
//!   by `F=...` (GNU find) or `S=...` (busybox, through stat); read them with [`tree_entries`].
//!
//! The prelude sets `LC_ALL=C` so tool messages are the English ones the parsers expect.
//!
//! ## Modes
//! [`ModeSpec::parse`] takes Ansible's `mode` (an int: the bits themselves; a string: octal, or
//! symbolic like `u=rw,g=r,o=r` / `u+x,go-w` / `a=rwX`); [`ModeSpec::resolve`] gives the bits for
//! a file given its current bits, kind and the target's umask; [`mode_str`] / [`stat_mode_str`]
//! format them as Ansible's results do (`0644` / `1777`).
//!
//! ## Owner, group and mode changes
//! [`WantAttrs`] (what the task asks) → [`WantAttrs::plan`] against a [`PathStat`] → [`AttrPlan`]
//! (only what differs), with [`AttrPlan::script`] to apply it (each failing step calls `__fail`)
//! and [`attr_failure_msg`] to turn a failure into Ansible's message. [`WantAttrs::plan_new`]
//! is the plan for a path about to be created; [`mkdirs_script`] creates missing parents
//! with it.
//!
//! ## Validation
//! [`Validate::parse`] reads a `validate` command once; [`Validate::argv`] gives its words
//! for the candidate file, to run without a shell.
//!
//! ## Results and diffs
//! [`path_info`] (Ansible's `uid gid owner group mode state size` keys), [`stat_keys`] and
//! [`perm_flag_keys`] (what `stat` and `find` report of a file), [`state_diff`]
//! (Ansible's `{before: {path, state, ...}, after: {...}}` diff as a [`FileDiff`]),
//! [`sha1_hex`], [`py_repr`] (Python's `repr` of a string, for messages), [`normpath`],
//! [`parent_dir`], [`basename`], [`join_path`].
//!
//! ## Example: a text editor's state, contents and change
//! ```text
//! // One exec: the path as the target sees it, its stat, the umask and the contents.
//! let probe = Script::new().raw(PRELUDE).set("p", &path).raw(
//!     "\n__tilde \"$p\"; p=$__o; __kv path \"$p\"; __kst st \"$p\"\n\
//!      __kumask; if [ -f \"$p\" ]; then __rest content; exec cat -- \"$p\"; fi",
//! );
//! let r = Records::parse(&ctx.host.exec(&Cmd::script(probe))?.stdout);
//! let path = r.get("path").unwrap_or(&path).to_string();
//! let st = r.stat("st");                  // Present(PathStat) | Absent | Error(msg)
//! let before = r.rest("content");         // None when the file is absent
//! let plan = want.plan(st.present()?, r.umask())?;   // owner/group/mode still to fix
//! // Change: ctx.host.put(new_bytes, &path, &FileAttrs { mode, .. }) writes atomically;
//! // then one exec for backup/attributes/result stat:
//! let change = Script::new().raw(PRELUDE).set("d", &path)
//!     .raw("\n__backup \"$d\" || __fail backup\n")   // before the put, if backup: yes
//!     .then(plan.script(&path))
//!     .raw("__kst fin \"$d\"");
//! ```

use serde_json::json;
use sha1::{Digest, Sha1};

use crate::{FileDiff, Map, Script, Value};

/// Shell functions for probe and change scripts (see the module docs). Static text only.
pub const PRELUDE: &str = r#"LC_ALL=C; export LC_ALL
__nl='
'
__SF='%f %u %g %s %h %i %d %t %T %b %B %o %.9X %.9Y %.9Z %U %G'
__kv() { printf '%s=%s\0' "$1" "$2"; }
__kvc() { __k=$1; shift; __o=$("$@"; echo .); __o=${__o%.}; printf '%s=%s\0' "$__k" "${__o%"$__nl"}"; }
__stv() { if __o=$(stat -c "$__SF" -- "$1" 2>&1); then __o="ok $__o"; else __o="err $__o"; fi; }
__stLv() { if __o=$(stat -L -c "$__SF" -- "$1" 2>&1); then __o="ok $__o"; else __o="err $__o"; fi; }
__st() { __stv "$1"; printf '%s' "$__o"; }
__stL() { __stLv "$1"; printf '%s' "$__o"; }
__kst() { __stv "$2"; __kv "$1" "$__o"; }
__kstL() { __stLv "$2"; __kv "$1" "$__o"; }
__sumv() { __o=; if [ -f "$2" ] && [ -r "$2" ]; then __o=$("$1" < "$2" 2>/dev/null) || __o=; __o=${__o%%[ 	]*}; fi; }
__sum() { __sumv "$1" "$2"; printf '%s' "$__o"; }
__kumask() { printf 'umask='; umask; printf '\0'; }
__kids() {
  if [ -r /proc/self/status ]; then
    while read -r __k __a __b __c; do
      case $__k in Uid:) __kv uid "$__b";; Gid:) __kv gid "$__b";; Groups:) __kv groups "$__a $__b $__c"; break;; esac
    done < /proc/self/status
  else __kv uid "$(id -u)"; __kv gid "$(id -g)"; __kv groups "$(id -G)"; fi
}
__acc() { __a=; if [ -r "$1" ]; then __a=r; else __a=-; fi; if [ -w "$1" ]; then __a=${__a}w; else __a=$__a-; fi; if [ -x "$1" ]; then __a=${__a}x; else __a=$__a-; fi; printf '%s' "$__a"; }
__rest() { printf '~%s\0' "$1"; }
__backup() { __b="$1.$(sh -c 'echo $PPID').$(date +%Y-%m-%d@%H:%M:%S~)" && __kv backup "$__b" && cp -p -- "$1" "$__b"; }
__fail() { __kv fail "$1"; exit 1; }
__tilde() { case $1 in '~'|'~/'*) __o=$HOME${1#'~'};; *) __o=$1;; esac; }
__tree() {
  if find / -maxdepth 0 -printf '' >/dev/null 2>&1; then
    find "$@" -printf 'f=%p\0F=%y %m %U %G %s %n %i %D %A@ %T@ %C@ %u %g\0'
  else
    find "$@" -exec sh -c 'for f; do printf "f=%s\0" "$f"; if o=$(stat -c "$0" -- "$f" 2>&1); then printf "S=ok %s\0" "$o"; else printf "S=err %s\0" "$o"; fi; done' "$__SF" {} +
  fi
}
"#;

/// The records a probe script printed, in order, and the raw tail after `__rest`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub items: Vec<(String, String)>,
    pub rest: Option<(String, Vec<u8>)>,
}

impl Records {
    /// Split `KEY=VALUE\0` records; anything that is not a record (stray output) is ignored.
    pub fn parse(stdout: &[u8]) -> Records {
        let mut records = Records::default();
        let mut pos = 0;
        while pos < stdout.len() {
            let end = stdout[pos..]
                .iter()
                .position(|b| *b == 0)
                .map_or(stdout.len(), |i| pos + i);
            let item = &stdout[pos..end];
            pos = end + 1;
            if let Some(key) = item.strip_prefix(b"~") {
                let tail = stdout.get(pos..).unwrap_or_default().to_vec();
                records.rest = Some((String::from_utf8_lossy(key).into_owned(), tail));
                break;
            }
            let text = String::from_utf8_lossy(item);
            if let Some((k, v)) = text.split_once('=') {
                records.items.push((k.to_string(), v.to_string()));
            }
        }
        records
    }
    /// The first value recorded under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every value recorded under `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.items
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// A `__st`/`__stL` record; a missing record reads as an error.
    pub fn stat(&self, key: &str) -> StatResult {
        match self.get(key) {
            Some(line) => StatResult::parse(line),
            None => StatResult::Error(format!("no {key} record in the probe output")),
        }
    }
    /// The bytes after `__rest KEY`, if the script got there with that key.
    pub fn rest(&self, key: &str) -> Option<&[u8]> {
        match &self.rest {
            Some((k, bytes)) if k == key => Some(bytes),
            _ => None,
        }
    }
    /// The target's umask (`__kumask`), 022 if it was not recorded.
    pub fn umask(&self) -> u32 {
        self.get("umask")
            .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
            .unwrap_or(0o022)
    }
}

/// What a path is, from the file type bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Link,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    #[default]
    Unknown,
}

impl FileKind {
    fn from_mode_bits(raw: u32) -> FileKind {
        match raw & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Directory,
            0o120000 => FileKind::Link,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            0o020000 => FileKind::CharDevice,
            0o060000 => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }
    /// `find -printf %y` letters.
    fn from_find_letter(letter: &str) -> FileKind {
        match letter {
            "f" => FileKind::File,
            "d" => FileKind::Directory,
            "l" => FileKind::Link,
            "p" => FileKind::Fifo,
            "s" => FileKind::Socket,
            "c" => FileKind::CharDevice,
            "b" => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }
}

/// One `stat` of a path on the target (`Default`: zeros, for building the stat a path
/// about to be created will have).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathStat {
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// User and group names; `None` when the id has no name on the target.
    pub owner: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub nlink: u64,
    pub inode: u64,
    pub dev: u64,
    /// Device number of a character or block device (`st_rdev`), from `__st` only.
    pub rdev: Option<u64>,
    pub blocks: Option<u64>,
    pub block_size: Option<u64>,
    pub atime: f64,
    pub mtime: f64,
    pub ctime: f64,
}

impl PathStat {
    /// Ansible's `get_state`: link, directory, hard (a non-directory with several links), file.
    pub fn ansible_state(&self) -> &'static str {
        match self.kind {
            FileKind::Link => "link",
            FileKind::Directory => "directory",
            _ if self.nlink > 1 => "hard",
            _ => "file",
        }
    }
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
    /// The owner as Ansible's results show it: the name, or the uid when it has none.
    pub fn owner_name(&self) -> String {
        self.owner.clone().unwrap_or_else(|| self.uid.to_string())
    }
    pub fn group_name(&self) -> String {
        self.group.clone().unwrap_or_else(|| self.gid.to_string())
    }
    /// Whether `want` (a name or a numeric id, as Ansible takes it) is this file's owner.
    pub fn owner_is(&self, want: &str) -> bool {
        id_matches(want, self.uid, self.owner.as_deref())
    }
    pub fn group_is(&self, want: &str) -> bool {
        id_matches(want, self.gid, self.group.as_deref())
    }

    /// Parse the fields of `__st` (after `ok `).
    fn from_stat_fields(line: &str) -> Option<PathStat> {
        let mut f = line.split(' ');
        let mut next = || f.next();
        let raw = u32::from_str_radix(next()?, 16).ok()?;
        let uid = next()?.parse().ok()?;
        let gid = next()?.parse().ok()?;
        let size = next()?.parse().ok()?;
        let nlink = next()?.parse().ok()?;
        let inode = next()?.parse().ok()?;
        let dev = next()?.parse().ok()?;
        let major = u64::from_str_radix(next()?, 16).ok()?;
        let minor = u64::from_str_radix(next()?, 16).ok()?;
        let blocks: u64 = next()?.parse().ok()?;
        let block_unit: u64 = next()?.parse().ok()?;
        let block_size = next()?.parse().ok()?;
        let atime = next()?.parse().ok()?;
        let mtime = next()?.parse().ok()?;
        let ctime = next()?.parse().ok()?;
        let owner = known_name(next()?, uid);
        let group = known_name(next()?, gid);
        let kind = FileKind::from_mode_bits(raw);
        Some(PathStat {
            kind,
            perm: raw & 0o7777,
            uid,
            gid,
            owner,
            group,
            size,
            nlink,
            inode,
            dev,
            rdev: Some(makedev(major, minor)),
            // Python's st_blocks counts 512-byte units whatever stat's %B says.
            blocks: Some(blocks * block_unit / 512),
            block_size: Some(block_size),
            atime,
            mtime,
            ctime,
        })
    }

    /// Parse the fields of `__tree`'s GNU `F=` records.
    fn from_find_fields(line: &str) -> Option<PathStat> {
        let mut f = line.split(' ');
        let mut next = || f.next();
        let kind = FileKind::from_find_letter(next()?);
        let perm = u32::from_str_radix(next()?, 8).ok()?;
        let uid = next()?.parse().ok()?;
        let gid = next()?.parse().ok()?;
        let size = next()?.parse().ok()?;
        let nlink = next()?.parse().ok()?;
        let inode = next()?.parse().ok()?;
        let dev = next()?.parse().ok()?;
        let atime = next()?.parse().ok()?;
        let mtime = next()?.parse().ok()?;
        let ctime = next()?.parse().ok()?;
        let owner = known_name(next()?, uid);
        let group = known_name(next()?, gid);
        Some(PathStat {
            kind,
            perm: perm & 0o7777,
            uid,
            gid,
            owner,
            group,
            size,
            nlink,
            inode,
            dev,
            rdev: None,
            blocks: None,
            block_size: None,
            atime,
            mtime,
            ctime,
        })
    }
}

/// glibc's `makedev`, so `device_type` matches Python's `st_rdev`.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// GNU stat prints `UNKNOWN` and find prints the number for ids without a name.
fn known_name(name: &str, id: u32) -> Option<String> {
    if name == "UNKNOWN" || name == id.to_string() || name.is_empty() {
        None
    } else {
        Some(name.to_string())
    }
}

/// Ansible compares owners numerically when given a number, by name otherwise.
fn id_matches(want: &str, id: u32, name: Option<&str>) -> bool {
    match want.trim().parse::<u32>() {
        Ok(n) => n == id,
        Err(_) => name == Some(want),
    }
}

/// What `__st` said about a path.
#[derive(Debug, Clone, PartialEq)]
pub enum StatResult {
    Present(PathStat),
    /// Nothing there (or a path component is not a directory), as `os.path.lexists` sees it.
    Absent,
    /// stat failed otherwise (permission denied, ...): the system's message.
    Error(String),
}

impl StatResult {
    pub fn parse(line: &str) -> StatResult {
        if let Some(fields) = line.strip_prefix("ok ") {
            return match PathStat::from_stat_fields(fields.trim_end()) {
                Some(st) => StatResult::Present(st),
                None => StatResult::Error(format!("unexpected stat output: {fields}")),
            };
        }
        let msg = line.strip_prefix("err ").unwrap_or(line).trim_end();
        // "stat: cannot statx '/x': No such file or directory": the reason is the last part.
        let reason = msg.rsplit(": ").next().unwrap_or(msg);
        match reason {
            "No such file or directory" | "Not a directory" => StatResult::Absent,
            _ => StatResult::Error(reason.to_string()),
        }
    }
    pub fn present(&self) -> Option<&PathStat> {
        match self {
            StatResult::Present(st) => Some(st),
            _ => None,
        }
    }
}

/// One entry of a `__tree` listing.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEntry {
    pub path: String,
    pub stat: StatResult,
}

/// The `f=`/`F=`/`S=` records of `__tree`, paired up in order.
pub fn tree_entries(records: &Records) -> Vec<TreeEntry> {
    let mut entries = Vec::new();
    let mut path: Option<&str> = None;
    for (key, value) in &records.items {
        match key.as_str() {
            "f" => path = Some(value),
            "F" | "S" => {
                if let Some(p) = path.take() {
                    let stat = if key == "F" {
                        match PathStat::from_find_fields(value) {
                            Some(st) => StatResult::Present(st),
                            None => StatResult::Error(format!("unexpected find output: {value}")),
                        }
                    } else {
                        StatResult::parse(value)
                    };
                    entries.push(TreeEntry {
                        path: p.to_string(),
                        stat,
                    });
                }
            }
            _ => {}
        }
    }
    entries
}

/// Checksum commands, by Ansible's `checksum_algorithm` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl ChecksumAlgo {
    /// The coreutils/busybox command printing this digest.
    pub fn command(self) -> &'static str {
        match self {
            ChecksumAlgo::Md5 => "md5sum",
            ChecksumAlgo::Sha1 => "sha1sum",
            ChecksumAlgo::Sha224 => "sha224sum",
            ChecksumAlgo::Sha256 => "sha256sum",
            ChecksumAlgo::Sha384 => "sha384sum",
            ChecksumAlgo::Sha512 => "sha512sum",
        }
    }
}

/// The hex SHA-1 of some bytes, as Ansible's `checksum` result key holds it.
pub fn sha1_hex(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Modes

/// A `mode` argument: the bits themselves, or a symbolic expression resolved per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    Bits(u32),
    Symbolic(String),
}

/// Ansible's message for a mode it cannot read.
pub const BAD_MODE: &str = "mode must be in octal or symbolic form";

impl ModeSpec {
    /// Read a `mode` argument. `None` (or null) means "leave the mode alone". An int is the
    /// bits (YAML `0644` arrives as 420); a string is octal (`"0644"`, `"644"`, `"0o644"`)
    /// or symbolic (`"u=rw,g=r,o=r"`, `"u+x,go-w"`). `"preserve"` is the caller's business.
    pub fn parse(value: Option<&Value>) -> Result<Option<ModeSpec>, String> {
        let spec = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(bits) if bits <= 0o7777 => ModeSpec::Bits(bits as u32),
                Some(_) => return Err(INVALID_MODE.to_string()),
                None => return Err(BAD_MODE.to_string()),
            },
            Some(Value::String(s)) => {
                let s = s.trim();
                match parse_octal(s) {
                    Some(bits) if bits <= 0o7777 => ModeSpec::Bits(bits),
                    Some(_) => return Err(INVALID_MODE.to_string()),
                    None => {
                        check_symbolic(s)?;
                        ModeSpec::Symbolic(s.to_string())
                    }
                }
            }
            Some(_) => return Err(BAD_MODE.to_string()),
        };
        Ok(Some(spec))
    }

    /// The bits this mode gives a file whose current bits are `current`.
    pub fn resolve(&self, current: u32, is_dir: bool, umask: u32) -> Result<u32, String> {
        match self {
            ModeSpec::Bits(bits) => Ok(*bits),
            ModeSpec::Symbolic(expr) => symbolic_to_bits(expr, current & 0o7777, is_dir, umask),
        }
    }

    /// The bits a file or directory created now would end with: its umask default, then this mode.
    pub fn resolve_new(&self, is_dir: bool, umask: u32) -> Result<u32, String> {
        let base = if is_dir { 0o777 } else { 0o666 };
        self.resolve(base & !umask, is_dir, umask)
    }
}

const INVALID_MODE: &str = "Invalid mode supplied, only permission info is allowed";

/// Python's `int(s, 8)`: optional `0o` prefix, octal digits, single underscores between digits.
fn parse_octal(s: &str) -> Option<u32> {
    let digits = s
        .strip_prefix("0o")
        .or_else(|| s.strip_prefix("0O"))
        .unwrap_or(s);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: u32 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(8)?;
        value = value.checked_mul(8)?.checked_add(d)?;
    }
    Some(value)
}

fn is_operator(c: char) -> bool {
    matches!(c, '+' | '-' | '=')
}

/// Validate a symbolic mode without a file (Ansible's `USERS_RE`/`PERMS_RE` checks).
fn check_symbolic(expr: &str) -> Result<(), String> {
    if expr.is_empty() {
        return Err(BAD_MODE.to_string());
    }
    for clause in expr.split(',') {
        let mut parts = clause.split(is_operator);
        let users = parts.next().unwrap_or_default();
        if !users.chars().all(|c| "ugoa".contains(c)) {
            return Err(BAD_MODE.to_string());
        }
        for perms in parts {
            if !perms.chars().all(|c| "rwxXstugo".contains(c)) {
                return Err(BAD_MODE.to_string());
            }
        }
    }
    Ok(())
}

/// Ansible's `_symbolic_mode_to_octal`: chmod's symbolic modes applied in order.
fn symbolic_to_bits(expr: &str, current: u32, is_dir: bool, umask: u32) -> Result<u32, String> {
    check_symbolic(expr)?;
    let mut mode = current;
    for clause in expr.split(',') {
        let operators: Vec<char> = clause.chars().filter(|c| is_operator(*c)).collect();
        let mut parts = clause.split(is_operator);
        let users = parts.next().unwrap_or_default();
        // No users means "a", but bits set in the umask are left alone (chmod's rule).
        let use_umask = users.is_empty();
        let users = if users.is_empty() || users.contains('a') {
            "ugo"
        } else {
            users
        };
        for (perms, op) in parts.zip(operators) {
            for user in users.chars() {
                let bits = perm_bits(user, perms, use_umask, umask, mode, is_dir);
                mode = apply_operator(user, op, bits, mode);
            }
        }
    }
    Ok(mode)
}

fn apply_operator(user: char, op: char, bits: u32, mode: u32) -> u32 {
    match op {
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
    }
}

/// Ansible's `_get_octal_mode_from_symbolic_perms` for one user class.
fn perm_bits(user: char, perms: &str, use_umask: bool, umask: u32, prev: u32, is_dir: bool) -> u32 {
    let keep = |bit: u32| {
        if use_umask {
            bit & !umask
        } else {
            bit
        }
    };
    let apply_x = is_dir || prev & 0o111 != 0;
    let shift = match user {
        'u' => 6,
        'g' => 3,
        _ => 0,
    };
    let class_of = |class_shift: u32| ((prev >> class_shift) & 0o7) << shift;
    perms.chars().fold(0, |acc, p| {
        acc | match p {
            'r' => keep(0o4 << shift),
            'w' => keep(0o2 << shift),
            'x' => keep(0o1 << shift),
            'X' if apply_x => 0o1 << shift,
            's' if user == 'u' => 0o4000,
            's' if user == 'g' => 0o2000,
            't' if user == 'o' => 0o1000,
            'u' => class_of(6),
            'g' => class_of(3),
            'o' => class_of(0),
            _ => 0,
        }
    })
}

/// A mode as Ansible's file results show it (`'0%03o'`): `0644`, `01777`.
pub fn mode_str(bits: u32) -> String {
    format!("0{bits:03o}")
}

/// A mode as the stat and find modules show it (`'%04o'`): `0644`, `1777`.
pub fn stat_mode_str(bits: u32) -> String {
    format!("{bits:04o}")
}

// ---------------------------------------------------------------------------------------
// Owner, group and mode changes

/// The owner, group and mode a task asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantAttrs {
    pub mode: Option<ModeSpec>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl WantAttrs {
    /// The task's `mode`, `owner` and `group`; an empty owner or group asks for nothing.
    /// A `mode` that cannot be read fails with Ansible's message.
    pub fn parse(
        mode: Option<&Value>,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<WantAttrs, String> {
        let name = |n: Option<&str>| n.filter(|n| !n.is_empty()).map(str::to_string);
        Ok(WantAttrs {
            mode: ModeSpec::parse(mode)?,
            owner: name(owner),
            group: name(group),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none()
    }

    /// What has to change on a file as `st` describes it. A symlink's own mode cannot be set
    /// on Linux, so links only ever get owner/group changes (as Ansible ends up doing).
    pub fn plan(&self, st: &PathStat, umask: u32) -> Result<AttrPlan, String> {
        let mut plan = AttrPlan::default();
        if let Some(owner) = &self.owner {
            if !st.owner_is(owner) {
                plan.owner = Some((st.owner_name(), owner.clone()));
            }
        }
        if let Some(group) = &self.group {
            if !st.group_is(group) {
                plan.group = Some((st.group_name(), group.clone()));
            }
        }
        if let Some(spec) = &self.mode {
            if st.kind != FileKind::Link {
                let bits = spec.resolve(st.perm, st.is_dir(), umask)?;
                if bits != st.perm {
                    plan.mode = Some((st.perm, bits));
                }
            }
        }
        Ok(plan)
    }
}

impl WantAttrs {
    /// The changes a file or directory created now needs: every asked owner and group, and
    /// the asked mode resolved against the umask default.
    pub fn plan_new(&self, is_dir: bool, umask: u32) -> Result<AttrPlan, String> {
        let mode = match &self.mode {
            Some(spec) => Some((0, spec.resolve_new(is_dir, umask)?)),
            None => None,
        };
        Ok(AttrPlan {
            owner: self.owner.clone().map(|o| (String::new(), o)),
            group: self.group.clone().map(|g| (String::new(), g)),
            mode,
        })
    }
}

/// Create every missing directory of `path` from the top, applying `new_dir` to each one
/// created (Ansible's rule for `file: state=directory` and `copy` to `dir/`, unlike
/// `mkdir -p`). Needs [`PRELUDE`]; on failure records `cur=DIR` (the one that could not be
/// created) and calls `__fail mkdir`.
pub fn mkdirs_script(path: &str, new_dir: &AttrPlan) -> Script {
    let absolute = path.starts_with('/');
    let mut components = Vec::new();
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = if cur.is_empty() && !absolute {
            part.to_string()
        } else {
            format!("{cur}/{part}")
        };
        components.push(cur.clone());
    }
    let s = Script::new()
        .raw("set --")
        .cmd(&components)
        .raw("\nfor c; do if [ ! -e \"$c\" ]; then\n");
    // `mkdir -m` creates with the mode (umask not applied, as chmod would set it): one
    // process per directory instead of two. One that appeared meanwhile still gets the mode.
    let s = match new_dir.mode {
        Some((_, bits)) => s
            .raw("mkdir -m")
            .arg(format!("{bits:o}"))
            .raw("-- \"$c\" || { [ -d \"$c\" ] && chmod --")
            .arg(format!("{bits:o}"))
            .raw("\"$c\"; }"),
        None => s.raw("mkdir -- \"$c\" || [ -d \"$c\" ]"),
    };
    let ownership = AttrPlan {
        mode: None,
        ..new_dir.clone()
    };
    s.raw("|| { __kv cur \"$c\"; __fail mkdir; }\n")
        .then(ownership.script_raw("\"$c\""))
        .raw("fi; done\n")
}

/// Owner/group/mode changes for one path: each `Some((before, after))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrPlan {
    pub owner: Option<(String, String)>,
    pub group: Option<(String, String)>,
    pub mode: Option<(u32, u32)>,
}

impl AttrPlan {
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.group.is_none() && self.mode.is_none()
    }

    /// Shell commands applying the plan to `path` (needs [`PRELUDE`]); a failing step calls
    /// `__fail chown|chgrp|chmod`. Links are changed themselves (`-h`), never their targets.
    pub fn script(&self, path: &str) -> Script {
        self.steps(&Script::new().arg(path))
    }

    /// Like [`AttrPlan::script`], for a path held in a shell variable (`"\"$c\""`) in a loop.
    pub fn script_raw(&self, path_expr: &'static str) -> Script {
        self.steps(&Script::new().raw(path_expr))
    }

    /// The commands, with `path` the (quoted) path argument.
    fn steps(&self, path: &Script) -> Script {
        let mut s = Script::new();
        if let Some((_, owner)) = &self.owner {
            s = s
                .raw("chown -h --")
                .arg(owner)
                .then(path.clone())
                .raw("|| __fail chown\n");
        }
        if let Some((_, group)) = &self.group {
            s = s
                .raw("chgrp -h --")
                .arg(group)
                .then(path.clone())
                .raw("|| __fail chgrp\n");
        }
        if let Some((_, bits)) = &self.mode {
            s = s
                .raw("chmod --")
                .arg(format!("{bits:o}"))
                .then(path.clone())
                .raw("|| __fail chmod\n");
        }
        s
    }

    /// Add Ansible's diff keys (`owner`, `group`, `mode`) for this plan.
    pub fn diff_into(&self, before: &mut Map, after: &mut Map) {
        if let Some((b, a)) = &self.owner {
            before.insert("owner".into(), id_value(b));
            after.insert("owner".into(), id_value(a));
        }
        if let Some((b, a)) = &self.group {
            before.insert("group".into(), id_value(b));
            after.insert("group".into(), id_value(a));
        }
        if let Some((b, a)) = &self.mode {
            before.insert("mode".into(), Value::String(mode_str(*b)));
            after.insert("mode".into(), Value::String(mode_str(*a)));
        }
    }
}

/// Numeric ids as numbers (as Ansible's diff shows them), names as strings.
fn id_value(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(id.to_string()),
    }
}

/// Ansible's message for a failed `__fail chown|chgrp|chmod` step, from the command's stderr.
pub fn attr_failure_msg(what: &str, want: &WantAttrs, stderr: &str) -> String {
    let stderr = stderr.trim();
    match what {
        // GNU says "invalid user", busybox "unknown user".
        "chown" if stderr.contains("invalid user") || stderr.contains("unknown user") => format!(
            "chown failed: failed to look up user {}",
            want.owner.as_deref().unwrap_or_default()
        ),
        "chgrp" if stderr.contains("invalid group") || stderr.contains("unknown group") => format!(
            "chgrp failed: failed to look up group {}",
            want.group.as_deref().unwrap_or_default()
        ),
        "chown" | "chgrp" | "chmod" => format!("{what} failed: {}", last_reason(stderr)),
        other => format!("{other} failed: {}", last_reason(stderr)),
    }
}

/// Ansible's message for a failed `__backup PATH || __fail backup` of `path`.
pub fn backup_failure_msg(path: &str, records: &Records, stderr: &str) -> String {
    format!(
        "Could not make backup of {} to {}: {}",
        py_repr(path),
        py_repr(records.get("backup").unwrap_or_default()),
        last_reason(stderr)
    )
}

/// The reason part of a tool message (`chmod: changing permissions of 'x': Operation not permitted`).
pub fn last_reason(stderr: &str) -> &str {
    let line = stderr.lines().last().unwrap_or_default();
    line.rsplit(": ").next().unwrap_or(line)
}

// ---------------------------------------------------------------------------------------
// Validation

/// A `validate` command (copy and the text editors): split into words on the controller
/// and run without a shell, so the candidate's path stays one argument whatever it holds.
/// In each word `%s` becomes the candidate and `%%` a `%` (Python's `validate % path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validate {
    words: Vec<String>,
}

impl Validate {
    /// Ansible's refusal of a command without `%s`, or one that does not split.
    pub fn parse(validate: &str) -> Result<Validate, String> {
        if !validate.contains("%s") {
            return Err(format!("validate must contain %s: {validate}"));
        }
        let words = shlex::split(validate)
            .ok_or_else(|| format!("validate is not a valid command line: {validate}"))?;
        Ok(Validate { words })
    }

    /// The command's words for the candidate file at `path`.
    pub fn argv(&self, path: &str) -> Vec<String> {
        self.words
            .iter()
            .map(|w| {
                w.split("%%")
                    .map(|part| part.replace("%s", path))
                    .collect::<Vec<_>>()
                    .join("%")
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Results and diffs

/// Ansible's `add_path_info` keys for a path that exists: `uid gid owner group mode state size`.
pub fn path_info(st: &PathStat) -> Map {
    let mut m = Map::new();
    m.insert("uid".into(), json!(st.uid));
    m.insert("gid".into(), json!(st.gid));
    m.insert("owner".into(), json!(st.owner_name()));
    m.insert("group".into(), json!(st.group_name()));
    m.insert("mode".into(), json!(mode_str(st.perm)));
    m.insert("state".into(), json!(st.ansible_state()));
    m.insert("size".into(), json!(st.size));
    m
}

/// The keys Ansible's `stat` and `find` both report from a stat, in their order, up to the
/// times: `mode isdir ischr isblk isreg isfifo islnk issock uid gid size inode dev nlink
/// atime mtime ctime`.
pub fn stat_keys(st: &PathStat, out: &mut Map) {
    let kind = |k: FileKind| json!(st.kind == k);
    out.insert("mode".into(), json!(stat_mode_str(st.perm)));
    out.insert("isdir".into(), kind(FileKind::Directory));
    out.insert("ischr".into(), kind(FileKind::CharDevice));
    out.insert("isblk".into(), kind(FileKind::BlockDevice));
    out.insert("isreg".into(), kind(FileKind::File));
    out.insert("isfifo".into(), kind(FileKind::Fifo));
    out.insert("islnk".into(), kind(FileKind::Link));
    out.insert("issock".into(), kind(FileKind::Socket));
    out.insert("uid".into(), json!(st.uid));
    out.insert("gid".into(), json!(st.gid));
    out.insert("size".into(), json!(st.size));
    out.insert("inode".into(), json!(st.inode));
    out.insert("dev".into(), json!(st.dev));
    out.insert("nlink".into(), json!(st.nlink));
    out.insert("atime".into(), json!(st.atime));
    out.insert("mtime".into(), json!(st.mtime));
    out.insert("ctime".into(), json!(st.ctime));
}

/// The permission flags `stat` and `find` report (`wusr rusr xusr ... isuid isgid`), in order.
pub fn perm_flag_keys(perm: u32, out: &mut Map) {
    for (key, bit) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        out.insert(key.into(), json!(perm & bit != 0));
    }
}

/// Ansible's dict-shaped diff (`{before: {path, state, mode, ...}, after: {...}}`) as a
/// [`FileDiff`] whose texts are the dicts as Ansible's callback prints them (sorted keys,
/// 4-space JSON). `None` when nothing differs.
pub fn state_diff(before: &Map, after: &Map) -> Option<FileDiff> {
    if before == after {
        return None;
    }
    // Ansible prints these dict diffs under bare "before"/"after" headers.
    Some(FileDiff {
        before_header: String::new(),
        after_header: String::new(),
        before: pretty_sorted(before),
        after: pretty_sorted(after),
    })
}

fn pretty_sorted(map: &Map) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let sorted: Map = keys
        .into_iter()
        .filter_map(|k| map.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if serde::Serialize::serialize(&sorted, &mut ser).is_err() {
        return String::new();
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

/// Python's `repr()` of a string, for messages Ansible builds with `{value!r}`.
pub use crate::pyfmt::str_repr as py_repr;

/// Python's `os.path.normpath` for POSIX paths (no filesystem access).
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let absolute = path.starts_with('/');
    // POSIX keeps exactly two leading slashes; Python does too.
    let prefix = if absolute && path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if absolute {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    let result = format!("{prefix}{joined}");
    if result.is_empty() {
        ".".into()
    } else {
        result
    }
}

/// Python's `os.path.dirname`: everything before the last slash (trailing slashes kept off).
pub fn parent_dir(path: &str) -> String {
    match path.rfind('/') {
        None => String::new(),
        Some(i) => {
            let head = &path[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head.to_string()
            } else {
                trimmed.to_string()
            }
        }
    }
}

/// Python's `os.path.basename`: everything after the last slash.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Python's `os.path.join` for two parts.
pub fn join_path(dir: &str, name: &str) -> String {
    if name.starts_with('/') || dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::{Cmd, Host};

    fn bits(mode: &str, current: u32, is_dir: bool) -> u32 {
        ModeSpec::parse(Some(&Value::String(mode.into())))
            .expect("valid mode")
            .expect("some mode")
            .resolve(current, is_dir, 0o022)
            .expect("resolves")
    }

    #[test]
    fn modes_parse_like_ansible() {
        assert_eq!(
            ModeSpec::parse(Some(&json!(420))),
            Ok(Some(ModeSpec::Bits(0o644)))
        );
        assert_eq!(bits("0644", 0, false), 0o644);
        assert_eq!(bits("644", 0, false), 0o644);
        assert_eq!(bits("0o750", 0, false), 0o750);
        assert_eq!(bits("1777", 0, true), 0o1777);
        assert_eq!(ModeSpec::parse(None), Ok(None));
        assert_eq!(
            ModeSpec::parse(Some(&json!("u=rw,g=bogus"))),
            Err(BAD_MODE.to_string())
        );
        assert_eq!(
            ModeSpec::parse(Some(&json!("17777"))),
            Err(INVALID_MODE.to_string())
        );
        assert_eq!(ModeSpec::parse(Some(&json!(true))), Err(BAD_MODE.into()));
        assert_eq!(bits("755", 0, false), 0o755);
        assert_eq!(bits("0o600", 0, false), 0o600);
        assert_eq!(
            ModeSpec::parse(Some(&json!("u=rw,g=r"))),
            Ok(Some(ModeSpec::Symbolic("u=rw,g=r".into())))
        );
        assert_eq!(ModeSpec::parse(Some(&json!("rwx"))), Err(BAD_MODE.into()));
        assert_eq!(ModeSpec::parse(Some(&json!("z=r"))), Err(BAD_MODE.into()));
        assert_eq!(ModeSpec::parse(Some(&json!("u=q"))), Err(BAD_MODE.into()));
        assert_eq!(
            ModeSpec::parse(Some(&json!(0o17777))),
            Err(INVALID_MODE.into())
        );
        // Python's int(s, 8) and Ansible's symbolic rules (checked with ansible-core 2.19):
        // `0O`, underscores and surrounding blanks are octal; a clause without an operator
        // changes nothing.
        assert_eq!(bits("0O600", 0, false), 0o600);
        assert_eq!(bits("6_44", 0, false), 0o644);
        assert_eq!(bits(" 0640 ", 0, false), 0o640);
        assert_eq!(bits("u", 0o640, false), 0o640);
    }

    #[test]
    fn symbolic_modes_follow_chmod() {
        assert_eq!(bits("u=rw,g=r,o=r", 0o777, false), 0o644);
        assert_eq!(bits("u+x,go-w", 0o666, false), 0o744);
        assert_eq!(bits("a=rwX", 0o600, false), 0o666);
        assert_eq!(bits("a=rwX", 0o700, false), 0o777);
        assert_eq!(bits("a=rwX", 0o600, true), 0o777);
        assert_eq!(bits("+x", 0o644, false), 0o755);
        assert_eq!(bits("g=u", 0o640, false), 0o660);
        assert_eq!(bits("u+s,o+t", 0o755, true), 0o5755);
        assert_eq!(bits("o=", 0o1777, true), 0o770);
        // Empty users honour the umask (022 here): +w only adds the owner's bit.
        assert_eq!(bits("+w", 0o444, false), 0o644);
        assert_eq!(bits("u+x", 0o644, false), 0o744);
        assert_eq!(bits("a-w", 0o664, false), 0o444);
        assert_eq!(bits("go=", 0o755, false), 0o700);
        // X counts only for a file that already has an x bit.
        assert_eq!(bits("a+X", 0o644, false), 0o644);
        assert_eq!(bits("a+X", 0o744, false), 0o755);
        assert_eq!(bits("u+s,o+t", 0o755, false), 0o5755);
        assert_eq!(bits("u=rwx-x", 0o000, false), 0o600);
    }

    #[test]
    fn mode_strings_match_ansible() {
        assert_eq!(mode_str(0o644), "0644");
        assert_eq!(mode_str(0o1777), "01777");
        assert_eq!(stat_mode_str(0o644), "0644");
        assert_eq!(stat_mode_str(0o1777), "1777");
    }

    #[test]
    fn records_keep_values_and_raw_tail() {
        let out = b"a=1\0b=x=y\nz\0stray\0~content\0bin\0ary";
        let r = Records::parse(out);
        assert_eq!(r.get("a"), Some("1"));
        assert_eq!(r.get("b"), Some("x=y\nz"));
        assert_eq!(r.rest("content"), Some(&b"bin\0ary"[..]));
        assert_eq!(r.rest("other"), None);
    }

    #[test]
    fn stat_errors_read_as_absent_or_error() {
        assert_eq!(
            StatResult::parse("err stat: cannot statx '/x: y': No such file or directory"),
            StatResult::Absent
        );
        assert_eq!(
            StatResult::parse("err stat: cannot statx '/x': Permission denied"),
            StatResult::Error("Permission denied".into())
        );
    }

    #[test]
    fn paths_split_like_python() {
        assert_eq!(normpath("/tmp//a/./b/../c/"), "/tmp/a/c");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/.."), "/");
        assert_eq!(parent_dir("/a/b"), "/a");
        assert_eq!(parent_dir("/a"), "/");
        assert_eq!(parent_dir("a"), "");
        assert_eq!(parent_dir("a/b/"), "a/b");
        assert_eq!(parent_dir("a/b"), "a");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join_path("/a", "/b"), "/b");
        assert_eq!(join_path("/a/", "b"), "/a/b");
    }

    #[test]
    fn py_repr_quotes_like_python() {
        assert_eq!(py_repr("a/b"), "'a/b'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
    }

    #[test]
    fn state_diff_prints_sorted_json() {
        let before = json!({"state": "absent", "path": "/x"});
        let after = json!({"state": "directory", "path": "/x"});
        let (Value::Object(b), Value::Object(a)) = (before, after) else {
            panic!("objects")
        };
        let d = state_diff(&b, &a).expect("differs");
        assert_eq!(
            d.before,
            "{\n    \"path\": \"/x\",\n    \"state\": \"absent\"\n}\n"
        );
        assert!(state_diff(&b, &b).is_none());
    }

    #[test]
    fn validate_words_keep_paths_whole() {
        let argv = |v: &str, p: &str| Validate::parse(v).expect("valid").argv(p);
        assert_eq!(
            argv("visudo -cf %s", "/etc/a b"),
            vec!["visudo", "-cf", "/etc/a b"]
        );
        assert_eq!(argv("printf '%%s:%s'", "/p"), vec!["printf", "%s:/p"]);
        assert_eq!(
            Validate::parse("true"),
            Err("validate must contain %s: true".to_string())
        );
    }

    #[test]
    fn sha1_matches_sha1sum() {
        assert_eq!(sha1_hex(b"x"), "11f6ad8ec52a2984abaafd7c3b516503785c2072");
    }

    #[test]
    fn prelude_probes_a_real_file_and_a_hostile_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a 'b' $(x) `y`\nz");
        let path = path.to_str().expect("utf-8").to_string();
        std::fs::write(&path, b"x").expect("write");
        std::os::unix::fs::symlink(&path, dir.path().join("link")).expect("symlink");
        let link = dir.path().join("link").to_str().expect("utf-8").to_string();
        let script = Script::new()
            .raw(PRELUDE)
            .set("p", &path)
            .set("l", &link)
            .raw("\n__kv st \"$(__st \"$p\")\"; __kv lst \"$(__st \"$l\")\"; __kv fst \"$(__stL \"$l\")\";")
            .raw("__kvc tgt readlink -- \"$l\"; __kv sum \"$(__sum sha1sum \"$p\")\"; __kv acc \"$(__acc \"$p\")\";")
            .raw("__kv umask \"$(umask)\"; __kv none \"$(__st \"$p.missing\")\";")
            // The fork-free forms record the same.
            .raw("__kst st2 \"$p\"; __kstL fst2 \"$l\"; __kst none2 \"$p.missing\"; __sumv sha1sum \"$p\"; __kv sum2 \"$__o\";")
            .raw("__sumv sha1sum \"$p.missing\"; __kv sum3 \"$__o\"; __kumask; __kids; __kv ids \"$(id -u) $(id -g)\";")
            .raw("__rest body; cat -- \"$p\"");
        let out = LocalHost::new("t")
            .exec(&Cmd::script(script))
            .expect("exec");
        let r = Records::parse(&out.stdout);
        let st = r.stat("st").present().cloned().expect("present");
        assert_eq!((st.kind, st.size, st.nlink), (FileKind::File, 1, 1));
        assert_eq!(
            r.stat("lst").present().map(|s| s.kind),
            Some(FileKind::Link)
        );
        assert_eq!(r.stat("fst").present().map(|s| s.inode), Some(st.inode));
        assert_eq!(r.get("tgt"), Some(path.as_str()));
        assert_eq!(r.get("sum"), Some(sha1_hex(b"x").as_str()));
        assert_eq!(r.get("acc").map(|a| &a[..2]), Some("rw"));
        assert_eq!(r.stat("none"), StatResult::Absent);
        assert_eq!(r.rest("body"), Some(&b"x"[..]));
        assert!(st.mtime > 1.0e9);
        // (The checksum in between read the file: only its atime may differ.)
        let st2 = r.stat("st2").present().cloned().expect("present");
        assert_eq!(
            PathStat {
                atime: st.atime,
                ..st2
            },
            st
        );
        let fst2 = r.stat("fst2").present().cloned().expect("present");
        assert_eq!(
            PathStat {
                atime: st.atime,
                ..fst2
            },
            st
        );
        assert_eq!(r.stat("none2"), StatResult::Absent);
        assert_eq!(r.get("sum2"), r.get("sum"));
        assert_eq!(r.get("sum3"), Some(""));
        assert_eq!(
            r.umask(),
            u32::from_str_radix(r.get("umask").expect("umask").trim(), 8).expect("octal")
        );
        assert_eq!(r.all("umask").count(), 2);
        let ids = format!(
            "{} {}",
            r.get("uid").expect("uid"),
            r.get("gid").expect("gid")
        );
        assert_eq!(r.get("ids"), Some(ids.as_str()));
    }

    #[test]
    fn tree_lists_entries_with_hostile_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8").to_string();
        std::fs::create_dir(dir.path().join("sub dir")).expect("mkdir");
        std::fs::write(dir.path().join("sub dir").join("f\n'x'"), b"abc").expect("write");
        let script = Script::new()
            .raw(PRELUDE)
            .raw("__tree")
            .arg(&root)
            .raw("-mindepth 1");
        let out = LocalHost::new("t")
            .exec(&Cmd::script(script))
            .expect("exec");
        let mut entries = tree_entries(&Records::parse(&out.stdout));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].path, format!("{root}/sub dir/f\n'x'"));
        let st = entries[1].stat.present().expect("stat");
        assert_eq!((st.kind, st.size), (FileKind::File, 3));
        assert_eq!(
            entries[0].stat.present().map(|s| s.kind),
            Some(FileKind::Directory)
        );
    }

    #[test]
    fn attr_plan_changes_only_what_differs() {
        let st = PathStat {
            kind: FileKind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            owner: Some("root".into()),
            group: Some("root".into()),
            size: 0,
            nlink: 1,
            inode: 1,
            dev: 1,
            rdev: None,
            blocks: None,
            block_size: None,
            atime: 0.0,
            mtime: 0.0,
            ctime: 0.0,
        };
        let want = WantAttrs {
            mode: Some(ModeSpec::Bits(0o600)),
            owner: Some("0".into()),
            group: Some("root".into()),
        };
        let plan = want.plan(&st, 0o022).expect("plan");
        assert_eq!(
            plan,
            AttrPlan {
                mode: Some((0o644, 0o600)),
                ..Default::default()
            }
        );
        assert_eq!(
            plan.script("/a b").as_str(),
            "chmod -- 600 '/a b' || __fail chmod\n"
        );
        assert_eq!(
            plan.script_raw("\"$c\"").as_str(),
            "chmod -- 600 \"$c\" || __fail chmod\n"
        );
        assert_eq!(
            attr_failure_msg(
                "chown",
                &WantAttrs {
                    owner: Some("nosuch".into()),
                    ..Default::default()
                },
                "chown: invalid user: 'nosuch'"
            ),
            "chown failed: failed to look up user nosuch"
        );
    }
}
