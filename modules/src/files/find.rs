//! The `find` module: files below some directories that match names, types, ages, sizes,
//! modes and contents.
//!
//! One exec lists every entry with its stat (`find -printf` on GNU, `find -exec stat` on
//! busybox); all matching happens here on the controller, with Python's `fnmatch` and `re`
//! rules. `contains` and `get_checksum` cost one more exec, reading only the files that
//! matched everything else.
//!
//! Where we differ from Ansible, on purpose:
//! - Results are sorted shallowest first, then by path, so runs are reproducible
//!   (Ansible returns directory order).
//! - `examined` counts the entries `find` listed; with `depth`, Ansible also counts the
//!   entries one level deeper that it looked at and skipped.
//! - `follow` uses `find -L`, so a followed link reports its target's type and stat.
//! - Files that are not UTF-8 are searched by `contains` with invalid bytes replaced,
//!   where Ansible gives up on the whole path; `encoding` is accepted and ignored.

use serde::Deserialize;
use serde_json::json;

use super::common::{
    basename, normpath, perm_flag_keys, py_repr, stat_keys, tree_entries, ChecksumAlgo, FileKind,
    ModeSpec, PathStat, Records, PRELUDE,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `find`.
pub struct Find;

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum FileType {
    Any,
    Directory,
    #[default]
    File,
    Link,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum AgeStamp {
    Atime,
    Ctime,
    #[default]
    Mtime,
}

fn yes() -> bool {
    true
}

fn sha1() -> ChecksumAlgo {
    ChecksumAlgo::Sha1
}

#[derive(Debug, Deserialize)]
struct FindArgs {
    #[serde(alias = "name", alias = "path")]
    paths: Vec<String>,
    #[serde(default, alias = "pattern")]
    patterns: Vec<String>,
    #[serde(alias = "exclude")]
    excludes: Option<Vec<String>>,
    contains: Option<String>,
    #[serde(default)]
    read_whole_file: bool,
    #[serde(default)]
    file_type: FileType,
    age: Option<String>,
    #[serde(default)]
    age_stamp: AgeStamp,
    size: Option<String>,
    #[serde(default)]
    recurse: bool,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    get_checksum: bool,
    #[serde(default = "sha1", alias = "checksum", alias = "checksum_algo")]
    checksum_algorithm: ChecksumAlgo,
    #[serde(default)]
    use_regex: bool,
    depth: Option<i64>,
    mode: Option<Value>,
    #[serde(default = "yes")]
    exact_mode: bool,
    #[serde(default)]
    #[allow(dead_code)]
    encoding: Option<String>,
    limit: Option<i64>,
}

/// A name pattern: Python's `fnmatch` glob or `re.match` regex, both compiled to a regex
/// anchored at the start (and, for globs, at the end).
struct NameMatcher {
    patterns: Vec<fancy_regex::Regex>,
    excludes: Vec<fancy_regex::Regex>,
}

impl NameMatcher {
    fn new(a: &FindArgs) -> Result<NameMatcher, String> {
        let compile = |p: &String| -> Result<fancy_regex::Regex, String> {
            let re = if a.use_regex {
                format!(r"\A(?:{p})")
            } else {
                fnmatch_regex(p)
            };
            fancy_regex::Regex::new(&re).map_err(|e| format!("invalid pattern {p}: {e}"))
        };
        let mut patterns = a.patterns.clone();
        if patterns.is_empty() {
            patterns.push(if a.use_regex { ".*" } else { "*" }.to_string());
        }
        Ok(NameMatcher {
            patterns: patterns.iter().map(compile).collect::<Result<_, _>>()?,
            excludes: a
                .excludes
                .iter()
                .flatten()
                .map(compile)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Ansible's `pfilter`: some pattern matches and no exclude does.
    fn matches(&self, name: &str) -> bool {
        let hit = |re: &fancy_regex::Regex| re.is_match(name).unwrap_or(false);
        self.patterns.iter().any(hit) && !self.excludes.iter().any(hit)
    }
}

/// Python's `fnmatch.translate` as a Rust regex: `*`, `?`, `[seq]`, `[!seq]`, the rest literal.
fn fnmatch_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from(r"\A(?s:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                // Find the closing bracket; `]` right after `[` or `[!` is literal.
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                    continue;
                }
                let mut set: String = chars[i..j].iter().collect();
                i = j + 1;
                let negate = set.starts_with('!');
                if negate {
                    set.remove(0);
                }
                let escaped: String = set
                    .chars()
                    .flat_map(|c| match c {
                        '\\' | '[' | ']' | '&' | '~' | '^' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                out.push('[');
                if negate {
                    out.push('^');
                }
                out.push_str(&escaped);
                out.push(']');
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(r")\z");
    out
}

/// `age`/`size` values: a signed number with a unit letter.
fn parse_scaled(value: &str, units: &[(char, i64)]) -> Option<i64> {
    let v = value.trim().to_ascii_lowercase();
    let (number, scale) = match v.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let (_, scale) = units.iter().find(|(u, _)| *u == c)?;
            (&v[..v.len() - 1], *scale)
        }
        _ => (v.as_str(), 1),
    };
    let digits = number.strip_prefix('-').unwrap_or(number);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    number.parse::<i64>().ok()?.checked_mul(scale)
}

/// One listed entry.
struct Entry {
    path: String,
    depth: usize,
    st: PathStat,
}

impl Module for Find {
    fn name(&self) -> &'static str {
        "find"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<FindArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: FindArgs = args::parse("find", args)?;
        let mode = match &a.mode {
            None | Some(Value::Null) => None,
            Some(Value::String(_)) => ModeSpec::parse(a.mode.as_ref())
                .map_err(ModuleError::Args)?
                .map(|spec| spec.resolve(0, false, 0).map_err(ModuleError::Args))
                .transpose()?,
            Some(other) => {
                return Ok(Outcome::failed(format!(
                    "argument 'mode' is not a string and conversion is not allowed, value is of type {}",
                    match other {
                        Value::Number(n) if n.is_f64() => "float",
                        Value::Number(_) => "int",
                        Value::Bool(_) => "bool",
                        Value::Array(_) => "list",
                        _ => "dict",
                    }
                )))
            }
        };
        let age = match &a.age {
            None => None,
            Some(v) => match parse_scaled(
                v,
                &[
                    ('s', 1),
                    ('m', 60),
                    ('h', 3600),
                    ('d', 86400),
                    ('w', 604800),
                ],
            ) {
                Some(secs) => Some(secs),
                None => return Ok(Outcome::failed("failed to process age").with("age", v.as_str())),
            },
        };
        let size = match &a.size {
            None => None,
            Some(v) => match parse_scaled(
                v,
                &[
                    ('b', 1),
                    ('k', 1024),
                    ('m', 1 << 20),
                    ('g', 1 << 30),
                    ('t', 1 << 40),
                ],
            ) {
                Some(bytes) => Some(bytes),
                None => {
                    return Ok(Outcome::failed("failed to process size").with("size", v.as_str()))
                }
            },
        };
        if let Some(limit) = a.limit.filter(|l| *l <= 0) {
            return Ok(Outcome::failed(format!(
                "limit cannot be {limit} (use None for unlimited)"
            )));
        }
        let names = NameMatcher::new(&a).map_err(ModuleError::Args)?;
        let contains = match &a.contains {
            Some(c) => Some(
                fancy_regex::Regex::new(&if a.read_whole_file {
                    c.clone()
                } else {
                    format!(r"\A(?:{c})")
                })
                .map_err(|e| ModuleError::Args(format!("invalid contains pattern {c}: {e}")))?,
            ),
            None => None,
        };

        // Without recurse only the top level; with it, `depth` levels (0 or none: all).
        let max_depth = match (a.recurse, a.depth.filter(|d| *d != 0)) {
            (false, _) => Some(1),
            (true, Some(d)) => Some(d.max(1)),
            (true, None) => None,
        };
        let roots: Vec<String> = a
            .paths
            .iter()
            .map(|p| {
                if p.starts_with('-') {
                    format!("./{p}")
                } else {
                    p.clone()
                }
            })
            .collect();
        let script = Script::new()
            .raw(PRELUDE)
            .set("L", if a.follow { "-L" } else { "" })
            .set("md", max_depth.map(|d| d.to_string()).unwrap_or_default())
            .raw("\n__kvc now date +%s\nset --")
            .cmd(&roots)
            .raw(
                "\nfor p; do __tilde \"$p\"; p=$__o; __kv root \"$p\"\n\
                 if [ -d \"$p\" ]; then __tree $L \"$p\" -mindepth 1 ${md:+-maxdepth \"$md\"}; else __kv notdir \"$p\"; fi\n\
                 done\n",
            );
        let out = ctx.host.exec(&Cmd::script(script))?;
        let records = Records::parse(&out.stdout);
        let now: f64 = records
            .get("now")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_default();

        let mut skipped = Map::new();
        let mut warnings = Vec::new();
        for path in records.all("notdir") {
            let reason = format!("{} is not a directory", py_repr(path));
            warnings.push(format!(
                "Skipped '{path}' path due to this access issue: {reason}\n"
            ));
            skipped.insert(path.to_string(), json!(reason));
        }
        for (path, reason) in find_errors(&out.stderr_str()) {
            let errno = match reason.as_str() {
                "Permission denied" => "[Errno 13] ",
                "No such file or directory" => "[Errno 2] ",
                _ => "",
            };
            skipped.insert(
                path.clone(),
                json!(format!("{errno}{reason}: {}", py_repr(&path))),
            );
        }

        // Entries with their depth below the root they were found under.
        let mut entries = Vec::new();
        let mut root_depth = 0;
        let mut examined = 0usize;
        let mut tree = Records::default();
        let flush = |tree: &mut Records, root_depth: usize, entries: &mut Vec<Entry>| {
            for e in tree_entries(tree) {
                if let Some(st) = e.stat.present() {
                    let path = normpath(&e.path);
                    let depth = path.matches('/').count().saturating_sub(root_depth);
                    entries.push(Entry {
                        path,
                        depth,
                        st: st.clone(),
                    });
                }
            }
            tree.items.clear();
        };
        for (key, value) in &records.items {
            match key.as_str() {
                "root" => {
                    flush(&mut tree, root_depth, &mut entries);
                    let root = normpath(value);
                    root_depth = root.trim_end_matches('/').matches('/').count();
                }
                "f" => {
                    examined += 1;
                    tree.items.push((key.clone(), value.clone()));
                }
                "F" | "S" => tree.items.push((key.clone(), value.clone())),
                _ => {}
            }
        }
        flush(&mut tree, root_depth, &mut entries);
        entries.sort_by(|x, y| x.depth.cmp(&y.depth).then_with(|| x.path.cmp(&y.path)));

        let mut matched: Vec<Entry> = entries
            .into_iter()
            .filter(|e| {
                let name = basename(&e.path);
                if name.starts_with('.') && !a.hidden {
                    return false;
                }
                let kind_ok = match a.file_type {
                    FileType::Any => true,
                    FileType::Directory => e.st.kind == FileKind::Directory,
                    FileType::File => e.st.kind == FileKind::File,
                    FileType::Link => e.st.kind == FileKind::Link,
                };
                let stamp = match a.age_stamp {
                    AgeStamp::Atime => e.st.atime,
                    AgeStamp::Ctime => e.st.ctime,
                    AgeStamp::Mtime => e.st.mtime,
                };
                let age_ok = match age {
                    None => true,
                    Some(age) if age >= 0 => now - stamp >= age as f64,
                    Some(age) => now - stamp <= age.unsigned_abs() as f64,
                };
                // Sizes only constrain regular files (directories etc. pass with "any").
                let size_ok = match size {
                    None => true,
                    Some(_) if e.st.kind != FileKind::File => a.file_type != FileType::File,
                    Some(size) if size >= 0 => e.st.size >= size.unsigned_abs(),
                    Some(size) => e.st.size <= size.unsigned_abs(),
                };
                let mode_ok = match mode {
                    None => true,
                    Some(m) if a.exact_mode => e.st.perm == m,
                    Some(m) => e.st.perm & m != 0,
                };
                kind_ok && names.matches(name) && age_ok && size_ok && mode_ok
            })
            .collect();

        // `contains` only applies to regular files when looking for files (Ansible's rule).
        let read_contents = contains.is_some() && a.file_type == FileType::File;
        let mut checksums = std::collections::HashMap::new();
        if read_contents || a.get_checksum {
            let wanted: Vec<&str> = matched
                .iter()
                .filter(|e| e.st.kind == FileKind::File)
                .map(|e| e.path.as_str())
                .collect();
            if !wanted.is_empty() {
                let (sums, contents) = read_files(
                    ctx,
                    &wanted,
                    a.get_checksum.then_some(a.checksum_algorithm),
                    read_contents,
                )?;
                checksums = sums;
                if let (true, Some(re)) = (read_contents, &contains) {
                    matched.retain(|e| {
                        contents
                            .get(&e.path)
                            .is_some_and(|text| content_matches(re, text, a.read_whole_file))
                    });
                }
            }
        }
        let mut msg = "All paths examined";
        if let Some(limit) = a.limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if matched.len() >= limit {
                matched.truncate(limit);
                msg = "Limit of matches reached";
            }
        }
        if !warnings.is_empty() {
            msg = "Not all paths examined, check warnings for details";
        }
        let files: Vec<Value> = matched
            .iter()
            .map(|e| {
                let mut f = file_info(&e.path, &e.st);
                if e.st.kind == FileKind::File && a.get_checksum {
                    if let Some(sum) = checksums.get(&e.path) {
                        f.insert("checksum".into(), json!(sum));
                    }
                }
                Value::Object(f)
            })
            .collect();
        let mut outcome = Outcome::ok()
            .with_msg(msg)
            .with("files", files.clone())
            .with("matched", files.len())
            .with("examined", examined)
            .with("skipped_paths", Value::Object(skipped));
        if !warnings.is_empty() {
            outcome = outcome.with("warnings", warnings);
        }
        Ok(outcome)
    }
}

/// `find: '/x': Permission denied` lines: the path and the reason.
fn find_errors(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("find: ")?;
            let (quoted, reason) = rest.rsplit_once(": ")?;
            let path = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
            Some((path.to_string(), reason.to_string()))
        })
        .collect()
}

/// Checksums and (NUL-free) contents of regular files, in one exec: the paths go through
/// stdin, so any number of them and any names fit.
type FileData = (
    std::collections::HashMap<String, String>,
    std::collections::HashMap<String, String>,
);

fn read_files(
    ctx: &mut Ctx<'_>,
    paths: &[&str],
    algo: Option<ChecksumAlgo>,
    contents: bool,
) -> Result<FileData, ModuleError> {
    let mut stdin = Vec::new();
    for p in paths {
        stdin.extend_from_slice(p.as_bytes());
        stdin.push(0);
    }
    let script = Script::new().raw(
        "xargs -0 sh -c 'for f; do printf \"f=%s\\0\" \"$f\"; \
         if [ -n \"$PLAY_SUM\" ]; then printf \"c=%s\\0\" \"$(\"$PLAY_SUM\" < \"$f\" 2>/dev/null | { read -r s r; printf %s \"$s\"; })\"; fi; \
         if [ -n \"$PLAY_READ\" ]; then printf \"b=\"; tr -d \"\\000\" < \"$f\" 2>/dev/null; printf \"\\0\"; fi; \
         done' sh",
    );
    let cmd = Cmd::script(script)
        .env(
            "PLAY_SUM",
            algo.map(ChecksumAlgo::command).unwrap_or_default(),
        )
        .env("PLAY_READ", if contents { "1" } else { "" })
        .stdin(stdin);
    let out = ctx.host.exec(&cmd)?;
    let records = Records::parse(&out.stdout);
    let (mut sums, mut texts) = (
        std::collections::HashMap::new(),
        std::collections::HashMap::new(),
    );
    let mut current = None;
    for (key, value) in records.items {
        match key.as_str() {
            "f" => current = Some(value),
            "c" => {
                if let Some(p) = &current {
                    if !value.is_empty() {
                        sums.insert(p.clone(), value);
                    }
                }
            }
            "b" => {
                if let Some(p) = &current {
                    texts.insert(p.clone(), value);
                }
            }
            _ => {}
        }
    }
    Ok((sums, texts))
}

/// Ansible's `contentfilter`: the whole text searched, or each line matched at its start.
fn content_matches(re: &fancy_regex::Regex, text: &str, whole: bool) -> bool {
    if whole {
        return re.is_match(text).unwrap_or(false);
    }
    text.split_inclusive('\n').any(|line| {
        let line = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        re.is_match(line).unwrap_or(false)
    })
}

/// Ansible's `statinfo` for one file, plus its path.
fn file_info(path: &str, st: &PathStat) -> Map {
    let mut f = Map::new();
    f.insert("path".into(), json!(path));
    stat_keys(st, &mut f);
    f.insert(
        "gr_name".into(),
        json!(st.group.clone().unwrap_or_default()),
    );
    f.insert(
        "pw_name".into(),
        json!(st.owner.clone().unwrap_or_default()),
    );
    perm_flag_keys(st.perm, &mut f);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit;
    use std::path::Path;

    const HOSTILE: &str = "a 'b' \"c\" $(x) `y`\nz.txt";

    fn run_with(args: Value, check: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&Find, args, check, false)
    }

    fn run(args: Value) -> Outcome {
        run_with(args, false).expect("runs")
    }

    fn s(p: &Path) -> String {
        p.to_str().expect("utf-8 path").to_string()
    }

    /// The found paths, relative to `root`.
    fn found(out: &Outcome, root: &Path) -> Vec<String> {
        out.result["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                f["path"]
                    .as_str()
                    .expect("path")
                    .trim_start_matches(&format!("{}/", s(root)))
                    .to_string()
            })
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub").join("deeper")).expect("mkdir");
        std::fs::create_dir(d.join(".git")).expect("mkdir");
        std::fs::write(d.join(HOSTILE), b"hello world\n").expect("write");
        std::fs::write(d.join("b.log"), b"nothing here\n").expect("write");
        std::fs::write(d.join(".hidden.txt"), b"hello\n").expect("write");
        std::fs::write(d.join("sub").join("c.txt"), b"  hello\n").expect("write");
        std::fs::write(d.join("sub").join("deeper").join("d.txt"), vec![b'x'; 3000])
            .expect("write");
        std::os::unix::fs::symlink("b.log", d.join("link")).expect("symlink");
        dir
    }

    #[test]
    fn top_level_files_by_default_and_never_changed() {
        let dir = tree();
        let args = json!({"paths": s(dir.path())});
        for check in [false, true] {
            let out = run_with(args.clone(), check).expect("runs");
            assert!(!out.changed && !out.failed);
            assert_eq!(found(&out, dir.path()), vec![HOSTILE, "b.log"]);
            assert_eq!(out.result["matched"], json!(2));
            assert_eq!(out.result["examined"], json!(6));
            assert_eq!(out.msg.as_deref(), Some("All paths examined"));
            let f = &out.result["files"][0];
            assert_eq!(f["isreg"], json!(true));
            assert_eq!(f["size"], json!(12));
            assert!(f["mode"].as_str().is_some_and(|m| m.len() == 4));
            assert!(f["pw_name"].is_string() && f["mtime"].is_f64());
        }
    }

    #[test]
    fn patterns_excludes_hidden_and_recursion() {
        let dir = tree();
        let d = s(dir.path());
        let out = run(json!({"paths": &d, "recurse": true, "patterns": "*.txt"}));
        assert_eq!(
            found(&out, dir.path()),
            vec![HOSTILE, "sub/c.txt", "sub/deeper/d.txt"]
        );
        let out = run(
            json!({"paths": &d, "recurse": true, "patterns": ["*.txt"], "excludes": "[cd].txt", "hidden": true}),
        );
        assert_eq!(found(&out, dir.path()), vec![".hidden.txt", HOSTILE]);
        let out = run(json!({"paths": &d, "recurse": true, "depth": 2, "file_type": "directory"}));
        assert_eq!(found(&out, dir.path()), vec!["sub", "sub/deeper"]);
        let out = run(
            json!({"paths": &d, "use_regex": true, "patterns": r"^(a |b\.)", "file_type": "any"}),
        );
        assert_eq!(found(&out, dir.path()), vec![HOSTILE, "b.log"]);
        let out = run(json!({"paths": &d, "file_type": "link"}));
        assert_eq!(found(&out, dir.path()), vec!["link"]);
        assert_eq!(out.result["files"][0]["islnk"], json!(true));
    }

    #[test]
    fn contents_sizes_ages_and_checksums() {
        let dir = tree();
        let d = s(dir.path());
        // Line by line, `contains` matches at the start of a line (Python's re.match).
        let out = run(json!({"paths": &d, "recurse": true, "contains": "hello"}));
        assert_eq!(found(&out, dir.path()), vec![HOSTILE]);
        let out = run(json!({"paths": &d, "recurse": true, "contains": r"\s+hello$"}));
        assert_eq!(found(&out, dir.path()), vec!["sub/c.txt"]);
        let out = run(
            json!({"paths": &d, "recurse": true, "contains": "world", "read_whole_file": true}),
        );
        assert_eq!(found(&out, dir.path()), vec![HOSTILE]);
        let out = run(json!({"paths": &d, "recurse": true, "size": "2k"}));
        assert_eq!(found(&out, dir.path()), vec!["sub/deeper/d.txt"]);
        let out = run(json!({"paths": &d, "recurse": true, "age": "1d"}));
        assert_eq!(found(&out, dir.path()), Vec::<String>::new());
        let out = run(json!({"paths": &d, "age": "-1h"}));
        assert_eq!(out.result["matched"], json!(2));
        let out = run(json!({"paths": &d, "patterns": "b.log", "get_checksum": true}));
        assert_eq!(
            out.result["files"][0]["checksum"],
            json!(super::super::common::sha1_hex(b"nothing here\n"))
        );
    }

    #[test]
    fn missing_paths_are_skipped_with_a_warning() {
        let dir = tree();
        let missing = format!("{}/nope", s(dir.path()));
        let out = run(json!({"paths": [s(dir.path()), &missing]}));
        assert!(!out.failed);
        assert_eq!(out.result["matched"], json!(2));
        assert_eq!(
            out.result["skipped_paths"],
            json!({&missing: format!("'{missing}' is not a directory")})
        );
        assert_eq!(
            out.msg.as_deref(),
            Some("Not all paths examined, check warnings for details")
        );
    }

    #[test]
    fn bad_values_use_ansibles_messages() {
        let out = run(json!({"paths": "/tmp", "age": "3 days"}));
        assert_eq!(out.msg.as_deref(), Some("failed to process age"));
        let out = run(json!({"paths": "/tmp", "size": "big"}));
        assert_eq!(out.msg.as_deref(), Some("failed to process size"));
        let out = run(json!({"paths": "/tmp", "limit": 0}));
        assert_eq!(
            out.msg.as_deref(),
            Some("limit cannot be 0 (use None for unlimited)")
        );
        let out = run(json!({"paths": "/tmp", "mode": 420}));
        assert_eq!(
            out.msg.as_deref(),
            Some("argument 'mode' is not a string and conversion is not allowed, value is of type int")
        );
        let err = run_with(json!({"patterns": "*"}), false).expect_err("refused");
        assert_eq!(err.to_string(), "missing required arguments: paths");
    }

    #[test]
    fn fnmatch_translates_like_python() {
        let m = |pat: &str, name: &str| {
            fancy_regex::Regex::new(&fnmatch_regex(pat))
                .expect("valid")
                .is_match(name)
                .expect("matches")
        };
        assert!(m("*.txt", "a.txt") && !m("*.txt", "a.txt.bak"));
        assert!(m("?.log", "b.log") && !m("?.log", "bb.log"));
        assert!(m("[!a]*", "b") && !m("[!a]*", "a"));
        assert!(m("[]]", "]") && m("a[", "a["));
        assert!(m("{a,b}", "{a,b}"), "no brace expansion in fnmatch");
        assert!(m("a.+(b)", "a.+(b)"));
    }

    #[test]
    fn scaled_values_parse_like_ansible() {
        let age = [
            ('s', 1),
            ('m', 60),
            ('h', 3600),
            ('d', 86400),
            ('w', 604800),
        ];
        assert_eq!(parse_scaled("2d", &age), Some(172800));
        assert_eq!(parse_scaled("-1H", &age), Some(-3600));
        assert_eq!(parse_scaled("30", &age), Some(30));
        assert_eq!(parse_scaled("1x", &age), None);
        assert_eq!(parse_scaled("", &age), None);
    }
}
