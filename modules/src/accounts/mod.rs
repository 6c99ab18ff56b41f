//! Modules for accounts and what belongs to them: `user`, `group`, `authorized_key`, `cron`;
//! and what they share: the target's account databases as `getent` prints them, Python's
//! `splitlines`, and running a guarded script whose stderr is split into named steps.

pub mod authorized_key;
pub mod cron;
pub mod group;
pub mod user;

use crate::{tools, Cmd, Ctx, ModuleError, Output, Script};

/// One line of `getent passwd`: `name:passwd:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    pub name: String,
    pub passwd: String,
    pub uid: i64,
    pub gid: i64,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

impl Passwd {
    pub fn parse(line: &str) -> Option<Passwd> {
        let f: Vec<&str> = line.trim_end_matches('\n').splitn(7, ':').collect();
        if f.len() != 7 {
            return None;
        }
        Some(Passwd {
            name: f[0].to_string(),
            passwd: f[1].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            gecos: f[4].to_string(),
            home: f[5].to_string(),
            shell: f[6].to_string(),
        })
    }
}

/// One line of `getent group`: `name:passwd:gid:member,member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: i64,
    pub members: Vec<String>,
}

impl GroupEntry {
    pub fn parse(line: &str) -> Option<GroupEntry> {
        let f: Vec<&str> = line.trim_end_matches('\n').splitn(4, ':').collect();
        if f.len() < 3 {
            return None;
        }
        Some(GroupEntry {
            name: f[0].to_string(),
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Every group `getent group` listed, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDb {
    pub groups: Vec<GroupEntry>,
}

impl GroupDb {
    pub fn parse(text: &str) -> GroupDb {
        GroupDb {
            groups: text.lines().filter_map(GroupEntry::parse).collect(),
        }
    }
    /// A group as Ansible's `user` module looks one up: as a gid first when the text is a
    /// number, then by name.
    pub fn lookup(&self, group: &str) -> Option<&GroupEntry> {
        if let Ok(gid) = group.trim().parse::<i64>() {
            if let Some(g) = self.groups.iter().find(|g| g.gid == gid) {
                return Some(g);
            }
        }
        self.groups.iter().find(|g| g.name == group)
    }
    /// The names of the groups that list `user` as a member (the primary group only if it
    /// lists the user too), in `getent` order.
    pub fn memberships(&self, user: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == user))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// Python's `str.splitlines(keepends)`: every line break Python knows, `\r\n` as one.
pub fn py_splitlines(text: &str, keepends: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                end = j + 1;
                chars.next();
            }
        }
        lines.push(text[start..if keepends { end } else { i }].to_string());
        start = end;
    }
    if start < text.len() {
        lines.push(text[start..].to_string());
    }
    lines
}

/// What a step of a change script wrote on stderr: scripts announce each step with
/// `__step NAME` (see [`STEPS`]), so the messages of one command can be told from another's.
pub fn step_stderr(stderr: &str, step: &str) -> String {
    let marker = format!("{STEP_MARKER}{step}");
    let mut out = String::new();
    let mut inside = false;
    for line in stderr.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(name) = bare.strip_prefix(STEP_MARKER) {
            inside = format!("{STEP_MARKER}{name}") == marker;
            continue;
        }
        if inside {
            out.push_str(line);
        }
    }
    out
}

/// What `__step` prints on stderr before a step's name.
const STEP_MARKER: &str = "__play_step__ ";

/// Shell function for change scripts: `__step NAME` marks where a step's stderr begins.
pub const STEPS: &str = "__step() { printf '__play_step__ %s\\n' \"$1\" >&2; }\n";

/// Run a guarded script (see [`tools`]): a missing tool becomes the module's error.
pub fn run_script(
    ctx: &mut Ctx<'_>,
    script: Script,
    stdin: Option<Vec<u8>>,
    secret: bool,
) -> Result<Output, ModuleError> {
    let mut cmd = Cmd::script(script);
    if let Some(data) = stdin {
        cmd = if secret {
            cmd.secret_stdin(data)
        } else {
            cmd.stdin(data)
        };
    }
    let out = ctx.host.exec(&cmd)?;
    tools::missing_tool(&out)?;
    Ok(out)
}

/// The last line of what a failed command printed, for messages.
pub fn trimmed(text: &str) -> String {
    text.trim_end_matches(['\n', '\r']).to_string()
}

#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_parse() {
        let p = Passwd::parse("alice:x:1001:1002:Alice A,,,:/home/alice:/bin/bash\n")
            .expect("test value");
        assert_eq!(
            (p.uid, p.gid, p.gecos.as_str(), p.shell.as_str()),
            (1001, 1002, "Alice A,,,", "/bin/bash")
        );
        assert!(Passwd::parse("broken:x:1").is_none());
        let db = GroupDb::parse("root:x:0:\nsudo:x:27:alice,bob\n1234:x:50:\nstaff:x:1234:alice\n");
        assert_eq!(db.memberships("alice"), vec!["sudo", "staff"]);
        assert_eq!(db.lookup("27").map(|g| g.name.as_str()), Some("sudo"));
        // A number is a gid first, as Ansible's grp.getgrgid(int(group)) tries it.
        assert_eq!(db.lookup("1234").map(|g| g.name.as_str()), Some("staff"));
        assert_eq!(db.lookup("50").map(|g| g.name.as_str()), Some("1234"));
        assert!(db.lookup("nope").is_none());
    }

    #[test]
    fn splitlines_is_pythons() {
        assert_eq!(
            py_splitlines("a\nb\r\nc\rd", false),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(py_splitlines("a\n\nb\n", true), vec!["a\n", "\n", "b\n"]);
        assert_eq!(py_splitlines("", false), Vec::<String>::new());
        assert_eq!(py_splitlines("x\u{2028}y", false), vec!["x", "y"]);
    }

    #[test]
    fn stderr_is_split_by_step() {
        let err = "__play_step__ useradd\nuseradd: warning\n__play_step__ chpasswd\nbad\n";
        assert_eq!(step_stderr(err, "useradd"), "useradd: warning\n");
        assert_eq!(step_stderr(err, "chpasswd"), "bad\n");
        assert_eq!(step_stderr(err, "keygen"), "");
    }
}
