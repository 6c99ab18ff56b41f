//! The `authorized_key` module (`ansible.posix.authorized_key`): SSH public keys present in
//! or absent from a user's `authorized_keys`.
//!
//! Keys are parsed and the file is rewritten on the controller exactly as Ansible's module
//! does it ([`enforce`]): a line is options, a known key type, the base64 blob and a comment;
//! keys are told apart by their blob and match when type, options (as a set of values per
//! name) and comment are the same too; a key that differs is rewritten with the new options
//! and comment; lines that are no key are kept (identical ones once, as Ansible's dict of
//! lines keeps them); `exclusive` keeps only the given keys; new keys go after the others in
//! the order given.
//!
//! Round trips: one exec reads the user, the file (and, for a `key` starting with `http`,
//! fetches it on the target with `curl`); one more, only when the content changes, creates
//! `~/.ssh` (0700, owned by the user; `manage_dir`) and writes the file atomically: a temp
//! file beside it, 0600, owned by the user, renamed over it.
//!
//! Deviations: `key` may also be a list of keys (Ansible's is a string); a line that is no
//! key and has no final newline gets one when keys are added after it (Ansible glues them
//! onto it); a key type without a blob is an invalid key (Ansible crashes on it).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{py_splitlines, run_script, Passwd};
use crate::cmd::atomic_write_script;
use crate::files::common::{Records, PRELUDE};
use crate::{args, Ctx, FileAttrs, FileDiff, Map, Module, ModuleError, Outcome, Script, Value};

/// `authorized_key`.
pub struct AuthorizedKey;

#[derive(Debug, Deserialize)]
struct AuthorizedKeyArgs {
    user: String,
    key: Value,
    path: Option<String>,
    #[serde(default = "yes")]
    manage_dir: bool,
    state: Option<State>,
    key_options: Option<String>,
    #[serde(default)]
    exclusive: bool,
    comment: Option<String>,
    #[serde(default = "yes")]
    validate_certs: bool,
    #[serde(default)]
    follow: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

/// The key types Ansible recognises in a line.
const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// Key options in their order, a name given more than once kept each time (Ansible's `keydict`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(pub Vec<(String, Option<String>)>);

impl Options {
    /// Split on commas outside double or single quotes, as Ansible's regular expression
    /// `((?:[^,"']|"[^"]*"|'[^']*')+)` with `re.split(...)[1:-1]` does: the runs it matches and
    /// the text between them (usually `,`, which is dropped) are the parts.
    pub fn parse(text: &str) -> Options {
        let chars: Vec<char> = text.chars().collect();
        let run_at = |start: usize| -> usize {
            let mut i = start;
            while i < chars.len() {
                let c = chars[i];
                if c != ',' && c != '"' && c != '\'' {
                    i += 1;
                } else if c == '"' || c == '\'' {
                    match chars[i + 1..].iter().position(|&d| d == c) {
                        Some(close) => i += close + 2,
                        None => break,
                    }
                } else {
                    break;
                }
            }
            i
        };
        let mut parts: Vec<String> = Vec::new();
        let mut pos = 0;
        let mut sep_start = 0;
        let mut first = true;
        while pos < chars.len() {
            let end = run_at(pos);
            if end == pos {
                pos += 1;
                continue;
            }
            if !first {
                parts.push(chars[sep_start..pos].iter().collect());
            }
            parts.push(chars[pos..end].iter().collect());
            first = false;
            pos = end;
            sep_start = end;
        }
        let mut options = Vec::new();
        for part in parts {
            if let Some((k, v)) = part.split_once('=') {
                options.push((k.to_string(), Some(v.to_string())));
            } else if part != "," {
                options.push((part, None));
            }
        }
        Options(options)
    }

    /// Python's `dict ==` on keydicts: the values of each name, in order; names unordered.
    fn same(&self, other: &Options) -> bool {
        fn grouped(o: &Options) -> BTreeMap<&str, Vec<&Option<String>>> {
            let mut map: BTreeMap<&str, Vec<&Option<String>>> = BTreeMap::new();
            for (k, v) in &o.0 {
                map.entry(k.as_str()).or_default().push(v);
            }
            map
        }
        grouped(self) == grouped(other)
    }

    fn render(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let joined: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        format!("{} ", joined.join(","))
    }
}

/// One line of an authorized_keys file, as Ansible's `parsekey` tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Key {
        blob: String,
        kind: String,
        options: Options,
        comment: String,
        rank: usize,
    },
    /// A comment or anything that is no key: written back as it was.
    Line { line: String, rank: usize },
}

impl Entry {
    fn rank(&self) -> usize {
        match self {
            Entry::Key { rank, .. } | Entry::Line { rank, .. } => *rank,
        }
    }
    fn id(&self) -> &str {
        match self {
            Entry::Key { blob, .. } => blob,
            Entry::Line { line, .. } => line,
        }
    }
    /// Everything but the rank is the same (Ansible's `tuple[:4]` comparison).
    fn same(&self, other: &Entry) -> bool {
        match (self, other) {
            (
                Entry::Key {
                    blob: b1,
                    kind: k1,
                    options: o1,
                    comment: c1,
                    ..
                },
                Entry::Key {
                    blob: b2,
                    kind: k2,
                    options: o2,
                    comment: c2,
                    ..
                },
            ) => b1 == b2 && k1 == k2 && o1.same(o2) && c1 == c2,
            (Entry::Line { line: l1, .. }, Entry::Line { line: l2, .. }) => l1 == l2,
            _ => false,
        }
    }
}

/// Parse one line (`None`: not a key, and not a comment either).
pub fn parse_key(raw: &str, rank: usize) -> Option<Entry> {
    let raw = raw.replace("\\#", "#");
    let parts: Vec<&str> = raw
        .split([' ', '\t', '\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first() == Some(&"#") {
        return Some(Entry::Line { line: raw, rank });
    }
    let at = parts.iter().position(|p| KEY_TYPES.contains(p))?;
    let blob = parts.get(at + 1)?;
    Some(Entry::Key {
        blob: blob.to_string(),
        kind: parts[at].to_string(),
        options: Options::parse(&parts[..at].join(" ")),
        comment: parts[at + 2..].join(" "),
        rank,
    })
}

/// The lines of a file by their identity (a key's blob, or the line itself), in the order
/// they were first stored: Python's dict, which Ansible keeps them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile(Vec<Entry>);

impl KeyFile {
    pub fn parse(content: &str) -> KeyFile {
        let mut file = KeyFile::default();
        for (rank, line) in py_splitlines(content, true).into_iter().enumerate() {
            let entry = parse_key(&line, rank).unwrap_or(Entry::Line { line, rank });
            file.set(entry);
        }
        file
    }
    fn get(&self, id: &str) -> Option<&Entry> {
        self.0.iter().find(|e| e.id() == id)
    }
    /// Replace the entry with the same identity in place, or append.
    fn set(&mut self, entry: Entry) {
        match self.0.iter_mut().find(|e| e.id() == entry.id()) {
            Some(slot) => *slot = entry,
            None => self.0.push(entry),
        }
    }
    fn remove(&mut self, id: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|e| e.id() != id);
        self.0.len() != before
    }
    /// The file's text, entries by rank (ties in storage order).
    pub fn render(&self) -> String {
        let mut entries: Vec<&Entry> = self.0.iter().collect();
        entries.sort_by_key(|e| e.rank());
        let mut out = String::new();
        for e in entries {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            match e {
                Entry::Line { line, .. } => out.push_str(line),
                Entry::Key {
                    blob,
                    kind,
                    options,
                    comment,
                    ..
                } => out.push_str(&format!("{}{kind} {blob} {comment}\n", options.render())),
            }
        }
        out
    }
}

/// What the task asks for.
pub struct Want<'a> {
    pub keys: &'a str,
    pub key_options: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub state: State,
    pub exclusive: bool,
}

/// The new content for `existing` (`None`: nothing to write), or the invalid key's message.
pub fn enforce(existing: &str, want: &Want<'_>) -> Result<Option<String>, String> {
    let new_keys: Vec<String> = py_splitlines(want.keys, false)
        .into_iter()
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect();
    let mut file = KeyFile::parse(existing);
    let max_rank = file.0.len();
    let mut keep: Vec<String> = Vec::new();
    let mut write = false;
    for (rank, new_key) in new_keys.iter().enumerate() {
        let mut parsed = match parse_key(new_key, rank) {
            Some(p) => p,
            None => return Err(format!("invalid key specified: {new_key}")),
        };
        if let Entry::Key {
            options, comment, ..
        } = &mut parsed
        {
            if let Some(o) = want.key_options {
                *options = Options::parse(o);
            }
            if let Some(c) = want.comment {
                *comment = c.to_string();
            }
        }
        let id = parsed.id().to_string();
        let mut matched = false;
        let mut differs = false;
        if let Some(old) = file.get(&id) {
            if want.state == State::Present && !parsed.same(old) {
                differs = true;
            } else {
                matched = true;
            }
        }
        match want.state {
            State::Present => {
                keep.push(id.clone());
                if differs && file.remove(&id) {
                    write = true;
                }
                if !matched {
                    match &mut parsed {
                        Entry::Key { rank: r, .. } | Entry::Line { rank: r, .. } => {
                            *r = max_rank + rank
                        }
                    }
                    file.set(parsed);
                    write = true;
                }
            }
            State::Absent => {
                if matched {
                    file.remove(&id);
                    write = true;
                }
            }
        }
    }
    if want.state == State::Present && want.exclusive {
        let before = file.0.len();
        file.0.retain(|e| keep.iter().any(|k| k == e.id()));
        write |= file.0.len() != before;
    }
    Ok(write.then(|| file.render()))
}

/// The `key` argument as text: a string, or a list of keys one per line.
fn key_text(key: &Value) -> Result<String, ModuleError> {
    match key {
        Value::Array(items) => {
            let lines: Option<Vec<String>> = items.iter().map(args::ansible_str).collect();
            lines.map(|l| l.join("\n")).ok_or_else(|| {
                ModuleError::Args(
                    "argument 'key' is of type list and we were unable to convert to str".into(),
                )
            })
        }
        Value::Null => Err(ModuleError::Args("missing required arguments: key".into())),
        other => args::ansible_str(other).ok_or_else(|| {
            ModuleError::Args(
                "argument 'key' is of type dict and we were unable to convert to str".into(),
            )
        }),
    }
}

/// Python's `os.path.dirname`.
fn dirname(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => {
            let head = &path[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head.to_string()
            } else {
                trimmed.to_string()
            }
        }
        None => String::new(),
    }
}

/// The probe: the user (`pw`), the key file's path (`kf`; `real`: resolved), a fetched key
/// list (`url_rc`, `url`), then the file's content raw.
fn probe_script(a: &AuthorizedKeyArgs, url: Option<&str>) -> Script {
    let mut s = Script::new().raw(PRELUDE).need("getent");
    if let Some(url) = url {
        s = s
            .need("curl")
            .set("url", url)
            .set("k", if a.validate_certs { "" } else { "-k" })
            .raw(
                "\nb=$(curl -fsSL $k -- \"$url\" 2>/dev/null; r=$?; echo .; exit $r); r=$?; __kv url_rc \"$r\"; __kv url \"${b%.}\"\n",
            );
    }
    s.set("u", &a.user)
        .set("p", a.path.as_deref().unwrap_or(""))
        .set("hp", if a.path.is_some() { "1" } else { "" })
        .set("fo", if a.follow { "1" } else { "" })
        .raw(
            "\nh=; if e=$(getent passwd \"$u\" 2>/dev/null); then case $e in \"$u\":*) e=${e%%\"$__nl\"*}; __kv pw \"$e\"; h=${e#*:*:*:*:*:}; h=${h%:*};; esac; fi\n\
             if [ -n \"$hp\" ]; then __tilde \"$p\"; kf=$__o\n\
             elif [ -n \"$e\" ]; then case $h in */) kf=$h.ssh/authorized_keys;; *) kf=$h/.ssh/authorized_keys;; esac\n\
             else exit 0; fi\n\
             __kv kf \"$kf\"\n\
             if [ -n \"$fo\" ]; then r=$(readlink -m -- \"$kf\" 2>/dev/null || readlink -f -- \"$kf\" 2>/dev/null) || r=; __kv real \"${r:-$kf}\"; fi\n\
             if [ -f \"$kf\" ]; then __rest content; exec cat -- \"$kf\"; fi\n",
        )
}

impl Module for AuthorizedKey {
    fn name(&self) -> &'static str {
        "authorized_key"
    }
    fn collections(&self) -> &'static [&'static str] {
        &["ansible.posix"]
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<AuthorizedKeyArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: AuthorizedKeyArgs = args::parse("authorized_key", raw)?;
        let key = key_text(&a.key)?;
        let state = a.state.unwrap_or(State::Present);
        let url = key.starts_with("http").then_some(key.as_str());

        let out = run_script(ctx, probe_script(&a, url), None, false)?;
        let records = Records::parse(&out.stdout);
        let keys = match url {
            Some(u) => {
                if records.get("url_rc") != Some("0") {
                    return Ok(Outcome::failed(format!("Error getting key from: {u}")));
                }
                records.get("url").unwrap_or_default().to_string()
            }
            None => key.clone(),
        };
        let user = records.get("pw").and_then(Passwd::parse);
        if user.is_none() && !(ctx.check && a.path.is_some()) {
            return Ok(Outcome::failed(if ctx.check {
                "Either user must exist or you must provide full path to key file in check mode"
                    .to_string()
            } else {
                format!(
                    "Failed to lookup user {}: \"getpwnam(): name not found: '{}'\"",
                    a.user, a.user
                )
            }));
        }
        let keyfile = records.get("kf").unwrap_or_default().to_string();
        let existing =
            String::from_utf8_lossy(records.rest("content").unwrap_or_default()).into_owned();
        let want = Want {
            keys: &keys,
            key_options: a.key_options.as_deref(),
            comment: a.comment.as_deref(),
            state,
            exclusive: a.exclusive,
        };
        let new_content = match enforce(&existing, &want) {
            Ok(c) => c,
            Err(msg) => return Ok(Outcome::failed(msg)),
        };

        let mut outcome = Outcome::ok()
            .with("user", a.user.as_str())
            .with("key", key.as_str())
            .with(
                "path",
                if a.path.is_some() {
                    Value::from(keyfile.as_str())
                } else {
                    Value::Null
                },
            )
            .with("manage_dir", a.manage_dir)
            .with(
                "state",
                if state == State::Present {
                    "present"
                } else {
                    "absent"
                },
            )
            .with("key_options", a.key_options.clone())
            .with("exclusive", a.exclusive)
            .with("comment", a.comment.clone())
            .with("validate_certs", a.validate_certs)
            .with("follow", a.follow)
            .with("keyfile", keyfile.as_str())
            .with("unique", false);
        let Some(after) = new_content else {
            return Ok(outcome);
        };
        let filename = if a.follow {
            records.get("real").unwrap_or(&keyfile).to_string()
        } else {
            keyfile.clone()
        };
        if !ctx.check {
            let Some(user) = user else {
                return Ok(Outcome::failed(format!("Failed to lookup user {}", a.user)));
            };
            let attrs = FileAttrs {
                mode: Some(0o600),
                owner: Some(user.uid.to_string()),
                group: Some(user.gid.to_string()),
            };
            let ids = format!("{}:{}", user.uid, user.gid);
            let script = Script::new()
                .raw(PRELUDE)
                .set("sd", dirname(&keyfile))
                .set("ids", &ids)
                .set("kf", &filename)
                .set("md", if a.manage_dir { "1" } else { "" })
                .raw(
                    "\nif [ -n \"$md\" ]; then\n\
                     if [ ! -e \"$sd\" ]; then e=$(mkdir -m 700 -- \"$sd\" 2>&1) || { __kv fail \"Failed to create directory $sd : ${e#mkdir: }\"; exit 1; }; fi\n\
                     chown \"$ids\" \"$sd\" && chmod 700 \"$sd\" || { __kv fail \"Failed to set the owner and mode of $sd\"; exit 1; }\n\
                     fi\n\
                     if [ ! -e \"$kf\" ]; then case $kf in */*) mkdir -p -- \"${kf%/*}/\" 2>/dev/null;; esac; fi\n(",
                )
                .then(atomic_write_script(&filename, &attrs))
                .raw(") || { __kv fail \"Failed to write to file $kf\"; exit 1; }\n");
            let out = run_script(ctx, script, Some(after.clone().into_bytes()), false)?;
            if !out.success() {
                let r = Records::parse(&out.stdout);
                let msg = r.get("fail").unwrap_or("Failed to write the key file");
                let err = out.stderr_str();
                return Ok(Outcome::failed(if err.trim().is_empty() {
                    msg.to_string()
                } else {
                    format!("{msg}: {}", err.trim())
                }));
            }
        }
        outcome.changed = true;
        if ctx.diff {
            outcome.diffs.push(FileDiff {
                before_header: keyfile,
                after_header: filename,
                before: existing,
                after,
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::fake::FakeTools;
    use serde_json::json;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne alice@a";
    const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABTwo bob@b";

    fn want<'a>(keys: &'a str, state: State) -> Want<'a> {
        Want {
            keys,
            key_options: None,
            comment: None,
            state,
            exclusive: false,
        }
    }

    #[test]
    fn options_split_like_ansibles_regex() {
        let o =
            Options::parse(r#"no-port-forwarding,from="10.0.0.1,10.0.0.2",command="echo 'a,b'""#);
        assert_eq!(
            o.0,
            vec![
                ("no-port-forwarding".into(), None),
                ("from".into(), Some("\"10.0.0.1,10.0.0.2\"".into())),
                ("command".into(), Some("\"echo 'a,b'\"".into())),
            ]
        );
        assert_eq!(Options::parse("").0, vec![]);
        // Order does not matter for a match; repeated names do.
        assert!(Options::parse("a,b=1").same(&Options::parse("b=1,a")));
        assert!(!Options::parse("a,a").same(&Options::parse("a")));
        // Empty parts between commas are kept as Ansible keeps them.
        assert_eq!(Options::parse("a,,b").0[1], (",,".to_string(), None));
        assert_eq!(Options::parse("a\"b").0[1], ("\"".to_string(), None));
    }

    #[test]
    fn keys_parse_with_options_and_comments() {
        let e = parse_key("no-pty,from=\"x y\" ssh-ed25519 AAAA c o m\n", 3).expect("a key");
        assert_eq!(
            e,
            Entry::Key {
                blob: "AAAA".into(),
                kind: "ssh-ed25519".into(),
                options: Options(vec![
                    ("no-pty".into(), None),
                    ("from".into(), Some("\"x y\"".into()))
                ]),
                comment: "c o m".into(),
                rank: 3,
            }
        );
        assert!(parse_key("garbage here", 0).is_none());
        assert!(parse_key("ssh-rsa", 0).is_none());
        assert!(matches!(parse_key("# note", 0), Some(Entry::Line { .. })));
    }

    #[test]
    fn keys_are_added_after_the_others_and_converge() {
        let existing = "# managed\nssh-ed25519 AAAAOLD old@x\n";
        let keys = format!("{K1}\n{K2}");
        let after = enforce(existing, &want(&keys, State::Present))
            .expect("valid")
            .expect("changed");
        assert_eq!(
            after,
            format!("# managed\nssh-ed25519 AAAAOLD old@x\n{K1}\n{K2}\n")
        );
        assert_eq!(enforce(&after, &want(&keys, State::Present)), Ok(None));
        // A key without a comment is written with a trailing space, as Ansible does.
        let after = enforce("", &want("ssh-rsa AAAAX", State::Present)).expect("valid");
        assert_eq!(after.as_deref(), Some("ssh-rsa AAAAX \n"));
    }

    #[test]
    fn options_comment_exclusive_and_absent() {
        let existing = format!("# c\n{K1}\nssh-rsa AAAAOTHER x\n");
        let w = Want {
            keys: K1,
            key_options: Some("no-pty,from=\"10.0.0.1\""),
            comment: None,
            state: State::Present,
            exclusive: true,
        };
        let after = enforce(&existing, &w).expect("valid").expect("changed");
        assert_eq!(after, format!("no-pty,from=\"10.0.0.1\" {K1}\n"));
        assert_eq!(enforce(&after, &w), Ok(None));
        let w = Want {
            comment: Some("renamed"),
            ..want(K1, State::Present)
        };
        let renamed = enforce(&format!("{K1}\n"), &w)
            .expect("valid")
            .expect("changed");
        assert_eq!(
            renamed,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne renamed\n"
        );
        let removed = enforce(&format!("{K1}\n{K2}\n"), &want(K2, State::Absent))
            .expect("valid")
            .expect("changed");
        assert_eq!(removed, format!("{K1}\n"));
        assert_eq!(enforce(&removed, &want(K2, State::Absent)), Ok(None));
        assert_eq!(
            enforce("", &want("not a key", State::Present)),
            Err("invalid key specified: not a key".into())
        );
    }

    #[test]
    fn identical_non_key_lines_collapse_as_in_ansibles_dict() {
        // Three distinct lines: the new key's rank is 3, ahead of the old key's 4 (what
        // ansible.posix writes for this file too).
        let after = enforce("# a\n\n# a\n\nssh-rsa AAAA x\n", &want(K2, State::Present))
            .expect("valid")
            .expect("changed");
        assert_eq!(after, format!("# a\n\n{K2}\nssh-rsa AAAA x\n"));
    }

    fn fake_user(host: &FakeTools, home: &std::path::Path) {
        let uid = String::from_utf8(
            std::process::Command::new("id")
                .arg("-u")
                .output()
                .expect("id")
                .stdout,
        )
        .expect("utf-8");
        let gid = String::from_utf8(
            std::process::Command::new("id")
                .arg("-g")
                .output()
                .expect("id")
                .stdout,
        )
        .expect("utf-8");
        host.tool(
            "getent",
            false,
            &format!(
                "[ \"$2\" = alice ] || exit 2; echo \"alice:x:{}:{}:Alice:{}:/bin/sh\"",
                uid.trim(),
                gid.trim(),
                home.display()
            ),
        );
    }

    #[test]
    fn the_file_and_ssh_dir_are_created_0600_and_0700() {
        use std::os::unix::fs::PermissionsExt;
        let mut host = FakeTools::new();
        let home = host.path("home alice");
        std::fs::create_dir(&home).expect("home");
        fake_user(&host, &home);
        let args = json!({"user": "alice", "key": [K1, K2], "key_options": "no-pty"});
        let r = host
            .run(&AuthorizedKey, args.clone(), true, true)
            .expect("runs");
        assert!(r.changed);
        assert!(!home.join(".ssh").exists(), "check mode created ~/.ssh");
        assert_eq!(r.diffs[0].before, "");
        let r = host
            .run(&AuthorizedKey, args.clone(), false, true)
            .expect("runs");
        assert!(r.changed, "{r:?}");
        let file = home.join(".ssh/authorized_keys");
        assert_eq!(
            std::fs::read_to_string(&file).expect("written"),
            format!("no-pty {K1}\nno-pty {K2}\n")
        );
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&home.join(".ssh")), mode(&file)), (0o700, 0o600));
        assert_eq!(r.result["keyfile"], json!(file.to_str()));
        assert_eq!(r.result["path"], json!(null));
        host.execs = 0;
        let r = host.run(&AuthorizedKey, args, false, false).expect("runs");
        assert!(!r.changed);
        assert_eq!(host.execs, 1);
    }

    #[test]
    fn users_that_do_not_exist_are_reported_as_ansible_does() {
        let mut host = FakeTools::new();
        let home = host.path("h");
        fake_user(&host, &home);
        let r = host
            .run(
                &AuthorizedKey,
                json!({"user": "nobody-here", "key": K1}),
                false,
                false,
            )
            .expect("runs");
        assert_eq!(
            r.msg.as_deref(),
            Some(
                "Failed to lookup user nobody-here: \"getpwnam(): name not found: 'nobody-here'\""
            )
        );
        let r = host
            .run(
                &AuthorizedKey,
                json!({"user": "nobody-here", "key": K1}),
                true,
                false,
            )
            .expect("runs");
        assert_eq!(
            r.msg.as_deref(),
            Some("Either user must exist or you must provide full path to key file in check mode")
        );
        let path = host.path("keys");
        let r = host
            .run(
                &AuthorizedKey,
                json!({"user": "nobody-here", "key": K1, "path": path.to_str()}),
                true,
                false,
            )
            .expect("runs");
        assert!(r.changed && !r.failed, "{r:?}");
    }
}
