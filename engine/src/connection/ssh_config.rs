//! A reader for OpenSSH client configuration files (`~/.ssh/config`, `ssh -F file`).
//!
//! Written here rather than taken from a crate: `ssh2-config` (the one crate made for ssh2)
//! files `UserKnownHostsFile` and `StrictHostKeyChecking` under "unsupported fields" as raw
//! strings and needs a newer Rust than this workspace's 1.80, and what play needs is small:
//! `Host` blocks with `*`/`?` globs and `!` negation, `Match all|host|originalhost`, `Include`,
//! `Keyword value` and `Keyword=value` lines with double-quoted arguments. Which keywords are
//! understood is decided by the caller ([`super::SshOptions::apply`]); this file only says
//! which lines apply to a host, in file order, so that the first value wins as in OpenSSH.

use std::path::{Path, PathBuf};

/// One `Keyword args...` line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    /// As written (OpenSSH compares keywords case-insensitively).
    pub keyword: String,
    pub args: Vec<String>,
    /// `file:line`, for error messages.
    pub origin: String,
}

/// Which hosts a block of lines applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// Lines before the first `Host`/`Match`, and `Match all`.
    Always,
    /// `Host a b !c`: patterns matched against the host name given on the command line.
    Host(Vec<String>),
    /// A `Match` whose criteria play cannot evaluate: an error if a lookup reaches it.
    Unsupported { criterion: String, origin: String },
}

#[derive(Debug, Clone)]
struct Block {
    condition: Condition,
    lines: Vec<ConfigLine>,
}

/// A parsed config file with its `Include`s expanded in place.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

/// How deep `Include` may nest (OpenSSH uses 16 too), so a file including itself ends.
const MAX_INCLUDE_DEPTH: usize = 16;

impl SshConfig {
    /// Reads `path`; `home` resolves `~` and relative `Include`s (relative to `~/.ssh`).
    pub fn load(path: &Path, home: &Path) -> Result<SshConfig, String> {
        let mut config = SshConfig::default();
        config.read_file(path, home, 0)?;
        Ok(config)
    }

    /// Parses config text (tests, and the files [`load`](Self::load) reads).
    pub fn parse(text: &str, origin: &str, home: &Path) -> Result<SshConfig, String> {
        let mut config = SshConfig::default();
        config.read_text(text, origin, home, 0)?;
        Ok(config)
    }

    fn read_file(&mut self, path: &Path, home: &Path, depth: usize) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read ssh config {}: {e}", path.display()))?;
        self.read_text(&text, &path.display().to_string(), home, depth)
    }

    fn read_text(
        &mut self,
        text: &str,
        origin: &str,
        home: &Path,
        depth: usize,
    ) -> Result<(), String> {
        // Lines before any Host/Match apply to every host.
        self.blocks.push(Block {
            condition: Condition::Always,
            lines: Vec::new(),
        });
        for (number, raw) in text.lines().enumerate() {
            let here = format!("{origin}:{}", number + 1);
            let Some((keyword, args)) = split_line(raw).map_err(|e| format!("{here}: {e}"))? else {
                continue;
            };
            match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    if args.is_empty() {
                        return Err(format!("{here}: Host needs at least one pattern"));
                    }
                    self.blocks.push(Block {
                        condition: Condition::Host(args),
                        lines: Vec::new(),
                    });
                }
                "match" => {
                    let condition = match_condition(&args, &here)?;
                    self.blocks.push(Block {
                        condition,
                        lines: Vec::new(),
                    });
                }
                "include" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(format!("{here}: Include nested too deeply"));
                    }
                    // An Include inside a Host block only applies to that block's hosts: the
                    // included lines inherit the condition, then the block resumes.
                    let condition = self
                        .blocks
                        .last()
                        .map(|b| b.condition.clone())
                        .unwrap_or(Condition::Always);
                    for pattern in &args {
                        for file in include_files(pattern, home)? {
                            let before = self.blocks.len();
                            self.read_file(&file, home, depth + 1)?;
                            for block in &mut self.blocks[before..] {
                                block.condition = and(&condition, &block.condition);
                            }
                        }
                    }
                    self.blocks.push(Block {
                        condition,
                        lines: Vec::new(),
                    });
                }
                _ => {
                    if let Some(block) = self.blocks.last_mut() {
                        block.lines.push(ConfigLine {
                            keyword,
                            args,
                            origin: here,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Every line that applies to `host` (the name given on the command line), in file order.
    pub fn lines_for(&self, host: &str) -> Result<Vec<&ConfigLine>, String> {
        let mut out = Vec::new();
        for block in &self.blocks {
            let applies = match &block.condition {
                Condition::Always => true,
                Condition::Host(patterns) => host_matches(host, patterns),
                Condition::Unsupported { criterion, origin } => {
                    if block.lines.is_empty() {
                        false
                    } else {
                        return Err(format!(
                            "{origin}: 'Match {criterion}' is not supported by play's ssh connection \
                             (supported: Match all, Match host, Match originalhost)"
                        ));
                    }
                }
            };
            if applies {
                out.extend(block.lines.iter());
            }
        }
        Ok(out)
    }
}

/// Both conditions (an included file's block inside an including `Host` block).
fn and(outer: &Condition, inner: &Condition) -> Condition {
    match (outer, inner) {
        (Condition::Always, c) | (c, Condition::Always) => c.clone(),
        (Condition::Unsupported { .. }, _) => outer.clone(),
        (_, Condition::Unsupported { .. }) => inner.clone(),
        // Host a inside Host b: OpenSSH keeps the inner block's own patterns once an included
        // file starts a new Host block, which is what the inner condition says.
        (Condition::Host(_), Condition::Host(_)) => inner.clone(),
    }
}

/// `Match` criteria play evaluates: `all`, `host`/`originalhost` patterns (play does not
/// canonicalise names, so both see the same name).
fn match_condition(args: &[String], here: &str) -> Result<Condition, String> {
    let mut patterns: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let criterion = args[i].to_ascii_lowercase();
        match criterion.as_str() {
            "all" if args.len() == 1 => return Ok(Condition::Always),
            "host" | "originalhost" => {
                let Some(list) = args.get(i + 1) else {
                    return Err(format!("{here}: Match {criterion} needs patterns"));
                };
                if !patterns.is_empty() {
                    // Two host criteria must both match; rare enough to refuse.
                    return Ok(Condition::Unsupported {
                        criterion: args.join(" "),
                        origin: here.to_string(),
                    });
                }
                patterns = list.split(',').map(str::to_string).collect();
                i += 2;
            }
            _ => {
                return Ok(Condition::Unsupported {
                    criterion: args.join(" "),
                    origin: here.to_string(),
                })
            }
        }
    }
    if patterns.is_empty() {
        return Err(format!("{here}: Match needs criteria"));
    }
    Ok(Condition::Host(patterns))
}

/// The files an `Include` names: `~` expanded, relative to `~/.ssh`, globs in the file name.
fn include_files(pattern: &str, home: &Path) -> Result<Vec<PathBuf>, String> {
    let expanded = expand_home(pattern, home);
    let path = if Path::new(&expanded).is_absolute() {
        PathBuf::from(expanded)
    } else {
        home.join(".ssh").join(expanded)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        // A missing included file is skipped, as OpenSSH does.
        return Ok(if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| glob_matches(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// `~` or `~/...` → the home directory.
pub fn expand_home(path: &str, home: &Path) -> String {
    if path == "~" {
        home.display().to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest).display().to_string()
    } else {
        path.to_string()
    }
}

/// Splits a config line into keyword and arguments: `Keyword value`, `Keyword=value`,
/// `Keyword = "a b" c`; `None` for blank lines and comments.
pub fn split_line(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_string();
    let mut rest = line[end..].trim_start();
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start();
    }
    Ok(Some((keyword, split_args(rest)?)))
}

/// Whitespace-separated arguments; double quotes group (OpenSSH's argv_split).
fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => match chars.next() {
                Some(next @ ('"' | '\\')) => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            // A comment after the arguments ends the line.
            '#' if !quoted && !in_word => break,
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if in_word {
        args.push(current);
    }
    Ok(args)
}

/// Whether `host` matches a `Host` line: some positive pattern matches and no `!pattern` does.
/// Case-insensitive, as OpenSSH lowercases host names.
pub fn host_matches(host: &str, patterns: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_matches(negated, &host) {
                return false;
            }
        } else if glob_matches(&pattern, &host) {
            matched = true;
        }
    }
    matched
}

/// `*` (any run) and `?` (one character) globbing.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much text it had taken, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    pi = star_p + 1;
                    ti = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> PathBuf {
        PathBuf::from("/home/me")
    }

    #[test]
    fn globs_and_negation_match_like_openssh() {
        assert!(glob_matches("*.example.com", "web1.example.com"));
        assert!(!glob_matches("*.example.com", "example.com"));
        assert!(glob_matches("web?", "web1"));
        assert!(!glob_matches("web?", "web12"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        let patterns: Vec<String> = vec!["*.corp".into(), "!db.corp".into()];
        assert!(host_matches("WEB.corp", &patterns));
        assert!(!host_matches("db.corp", &patterns));
        assert!(!host_matches("web.home", &patterns));
    }

    #[test]
    fn lines_split_on_space_or_equals_with_quotes() {
        assert_eq!(
            split_line("  IdentityFile \"/a b/key\" # mine").expect("parses"),
            Some(("IdentityFile".into(), vec!["/a b/key".into()]))
        );
        assert_eq!(
            split_line("Port=2222").expect("parses"),
            Some(("Port".into(), vec!["2222".into()]))
        );
        assert_eq!(
            split_line("User = alice").expect("parses"),
            Some(("User".into(), vec!["alice".into()]))
        );
        assert_eq!(split_line("# comment").expect("parses"), None);
        assert!(split_line("User \"open").is_err());
    }

    #[test]
    fn blocks_apply_in_file_order() {
        let text = "User everyone\n\
                    Host web* !web9\n  User webuser\n  Port 2201\n\
                    Match host db\n  User dbuser\n\
                    Host *\n  User fallback\n  Port 22\n";
        let config = SshConfig::parse(text, "cfg", &home()).expect("parses");
        let summary = |host: &str| -> Vec<String> {
            config
                .lines_for(host)
                .expect("lookup")
                .iter()
                .map(|l| format!("{} {}", l.keyword, l.args.join(" ")))
                .collect()
        };
        assert_eq!(
            summary("web1"),
            [
                "User everyone",
                "User webuser",
                "Port 2201",
                "User fallback",
                "Port 22"
            ]
        );
        assert_eq!(
            summary("web9"),
            ["User everyone", "User fallback", "Port 22"]
        );
        assert_eq!(
            summary("db"),
            ["User everyone", "User dbuser", "User fallback", "Port 22"]
        );
    }

    #[test]
    fn match_exec_is_refused_only_when_reached() {
        let config =
            SshConfig::parse("Match exec \"true\"\n  User x\n", "cfg", &home()).expect("parses");
        let err = config.lines_for("any").expect_err("unsupported");
        assert!(err.contains("cfg:1") && err.contains("Match exec"), "{err}");
    }

    #[test]
    fn includes_read_globbed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ssh_dir = dir.path().join(".ssh");
        std::fs::create_dir_all(ssh_dir.join("conf.d")).expect("mkdir");
        std::fs::write(ssh_dir.join("conf.d/a.conf"), "Host a\n  Port 1\n").expect("write");
        std::fs::write(ssh_dir.join("conf.d/b.conf"), "Host b\n  Port 2\n").expect("write");
        let config = SshConfig::parse(
            "Include conf.d/*.conf\nHost *\n  Port 3\n",
            "cfg",
            dir.path(),
        )
        .expect("parses");
        let ports = |host: &str| -> Vec<String> {
            config
                .lines_for(host)
                .expect("lookup")
                .iter()
                .map(|l| l.args.join(" "))
                .collect()
        };
        assert_eq!(ports("a"), ["1", "3"]);
        assert_eq!(ports("b"), ["2", "3"]);
    }
}
