//! The `copy` module: bytes from the controller (`content`, or a `src:` file / rendered
//! template the engine passes as `_content_b64`) or a file already on the target
//! (`remote_src`) written to `dest` atomically, with owner, group, mode, backup and validation.
//!
//! Round trips: one exec reads the destination (stat, sha1, parent directory, and the old
//! content when a diff is wanted), which is all a converged copy costs. A content change adds
//! the transfer (`Host::put_new`: the bytes and the mode to a temporary name beside `dest`,
//! by SFTP alone over SSH) and one exec that validates,
//! backs up and renames it into place and stats the result; a mode/owner-only change is one
//! exec more.
//!
//! Where we differ from Ansible, on purpose:
//! - A parent directory that is not writable is only an error when we actually need to
//!   write there (Ansible refuses even a copy that is already in place).
//! - `validate` is split into words on the controller before `%s` becomes the temporary
//!   path, so a path with spaces stays one argument (Ansible splits after substituting).
//! - Diffs of binary or large (over 104448 bytes) files are left out rather than
//!   replaced by a "diff skipped" note, and `remote_src` copies show no content diff.
//! - `remote_src` with a directory `src` is not supported; `mode: preserve` is only
//!   resolved here for `remote_src` (for controller files the engine passes the mode).

use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::common::{
    attr_failure_msg, backup_failure_msg, basename, join_path, last_reason, mkdirs_script,
    path_info, sha1_hex, state_diff, AttrPlan, FileKind, ModeSpec, PathStat, Records, StatResult,
    Validate, WantAttrs, PRELUDE,
};
use crate::diff::file_diff;
use crate::{args, Cmd, Ctx, HostError, Map, Module, ModuleError, Outcome, Script, Value};

/// `copy`.
pub struct Copy;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct CopyArgs {
    dest: String,
    src: Option<String>,
    content: Option<Value>,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default)]
    backup: bool,
    #[serde(default = "yes")]
    force: bool,
    validate: Option<String>,
    directory_mode: Option<Value>,
    #[serde(default)]
    remote_src: bool,
    #[serde(default)]
    follow: bool,
    /// The SHA-1 the source must have.
    checksum: Option<String>,
    /// Controller-side options the engine handles before calling the module.
    #[serde(default)]
    #[allow(dead_code)]
    local_follow: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    decrypt: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
    /// The bytes of a controller-side `src:` file or rendered template, base64-encoded.
    _content_b64: Option<String>,
    /// The controller-side path those bytes came from (result `src`, diff header, basename).
    _src: Option<String>,
    /// The name to use under a directory `dest` (the engine's template action sets it).
    _original_basename: Option<String>,
}

/// Ansible's `max_file_size_for_diff`.
const MAX_DIFF_SIZE: usize = 104448;

/// Where the new content comes from.
enum Source {
    Bytes(Vec<u8>),
    /// A path on the target (`remote_src`).
    Remote(String),
}

impl Module for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<CopyArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: CopyArgs = args::parse("copy", args)?;
        let preserve = matches!(&a.mode, Some(Value::String(m)) if m == "preserve");
        let mode = if preserve { None } else { a.mode.as_ref() };
        let want = WantAttrs::parse(mode, a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let directory_mode =
            ModeSpec::parse(a.directory_mode.as_ref()).map_err(ModuleError::Args)?;

        // `%s` stands for the temporary file, whose name is only known later.
        let validate = match a.validate.as_deref().map(Validate::parse) {
            Some(Ok(validate)) => Some(validate),
            Some(Err(msg)) => return Ok(Outcome::failed(msg)),
            None => None,
        };
        let source = match source(&a)? {
            Ok(source) => source,
            Err(failed) => return Ok(failed),
        };
        if preserve && !matches!(source, Source::Remote(_)) {
            return Err(ModuleError::Args(
                "mode=preserve needs the source's mode: the engine passes it as an octal mode for controller files".into(),
            ));
        }
        let want_sum = match &source {
            Source::Bytes(data) => Some(sha1_hex(data)),
            Source::Remote(_) => None,
        };
        if let (Some(expected), Some(actual)) = (&a.checksum, &want_sum) {
            if expected != actual {
                return Ok(Outcome::failed(
                    "Copied file does not match the expected checksum. Transfer failed.",
                )
                .with("checksum", actual.as_str())
                .with("expected_checksum", expected.as_str()));
            }
        }
        // The controller path the content came from: `_src`, or `src` as the engine left it
        // (with `_content_b64`) or as it is on the target (`remote_src`).
        let origin = a._src.clone().or_else(|| a.src.clone());
        let name = a
            ._original_basename
            .clone()
            .or_else(|| {
                origin
                    .as_deref()
                    .map(|s| basename(s.trim_end_matches('/')).to_string())
            })
            .filter(|n| !n.is_empty());
        let result_src = origin;

        // `dest/` means "inside this directory, created if missing".
        let into_dir = a.dest.ends_with('/');
        let (dest, joined) = match (&name, into_dir) {
            (None, true) => return Ok(Outcome::failed(CONTENT_TO_DIR)),
            (Some(n), true) => (join_path(&a.dest, n), String::new()),
            (Some(n), false) => (a.dest.clone(), join_path(&a.dest, n)),
            (None, false) => (a.dest.clone(), String::new()),
        };

        let remote = match &source {
            Source::Remote(s) => s.clone(),
            Source::Bytes(_) => String::new(),
        };
        let probe = Script::new()
            .raw(PRELUDE)
            .set("d", &dest)
            .set("dj", &joined)
            .set("s", &remote)
            .set("want", want_sum.clone().unwrap_or_default())
            .set("follow", if a.follow { "1" } else { "" })
            .set("diff", if ctx.diff && !a.remote_src { "1" } else { "" })
            .raw(
                "\n__tilde \"$d\"; d=$__o; __tilde \"$dj\"; dj=$__o; __tilde \"$s\"; s=$__o;\n\
                 if [ -n \"$dj\" ] && [ -d \"$d\" ]; then d=$dj; fi\n\
                 if [ -n \"$follow\" ] && [ -L \"$d\" ]; then __r=$(readlink -f -- \"$d\") && [ -n \"$__r\" ] && d=$__r; fi\n\
                 case \"$d\" in */*) pd=${d%/*}; pd=${pd:-/};; *) pd=.;; esac\n\
                 __kv path \"$d\"; __kst st \"$d\"; __kv pdir \"$pd\"; if [ -d \"$pd\" ]; then __kv pdok 1; fi\n\
                 if [ -w \"$pd\" ]; then __kv pw 1; fi\n\
                 __kumask; __kids\n\
                 __sumv sha1sum \"$d\"; __s=$__o; __kv sum \"$__s\"\n\
                 if [ -n \"$s\" ]; then __kv xsrc \"$s\"; __kstL sst \"$s\"; if [ -r \"$s\" ]; then __kv sr 1; fi; __sumv sha1sum \"$s\"; want=$__o; __kv ssum \"$want\"; fi\n\
                 if [ -n \"$diff\" ] && [ -f \"$d\" ] && [ \"$__s\" != \"$want\" ]; then __rest before; head -c 104449 -- \"$d\"; fi\n",
            );
        let out = ctx.host.exec(&Cmd::script(probe))?;
        let r = Records::parse(&out.stdout);
        let dest = r.get("path").unwrap_or(&dest).to_string();
        let parent = r.get("pdir").unwrap_or(".").to_string();
        let umask = r.umask();
        let st = match r.stat("st") {
            StatResult::Present(st) => Some(st),
            StatResult::Absent => None,
            StatResult::Error(msg) => return Ok(Outcome::failed(msg).with("dest", dest)),
        };

        // The new content's checksum, and (for remote_src) the source's stat.
        let (new_sum, src_stat) = match &source {
            Source::Bytes(_) => (want_sum.clone().unwrap_or_default(), None),
            Source::Remote(s) => {
                let sst = match r.stat("sst") {
                    StatResult::Present(sst) => sst,
                    _ => return Ok(Outcome::failed(format!("Source {s} not found"))),
                };
                if sst.kind == FileKind::Directory {
                    return Ok(Outcome::failed(format!(
                        "Cannot copy the directory {s}: remote_src copies single files only"
                    )));
                }
                if r.get("sr").is_none() {
                    return Ok(Outcome::failed(format!("Source {s} not readable")));
                }
                (r.get("ssum").unwrap_or_default().to_string(), Some(sst))
            }
        };

        if st.as_ref().is_some_and(PathStat::is_dir) {
            return Ok(Outcome::failed(CONTENT_TO_DIR));
        }
        if st.is_some() && !a.force {
            let mut out = Outcome::ok().with("dest", dest.as_str());
            if let Some(src) = &result_src {
                out = out.with("src", src.as_str());
            }
            return Ok(out);
        }
        let parent_ok = r.get("pdok").is_some();
        let make_parents = !parent_ok && into_dir;
        if !parent_ok && !into_dir && ctx.check {
            // Ansible in check mode: an earlier task may create the directory; say it would change.
            return Ok(Outcome::changed(true));
        }
        if !parent_ok && !into_dir {
            return Ok(
                Outcome::failed(format!("Destination directory {parent} does not exist"))
                    .with("checksum", new_sum),
            );
        }

        let same_content = st
            .as_ref()
            .is_some_and(|s| s.kind == FileKind::File && r.get("sum") == Some(new_sum.as_str()));

        let mut outcome = Outcome::ok().with("dest", dest.as_str());
        if let Some(src) = &result_src {
            outcome = outcome.with("src", src.as_str());
        }
        outcome = outcome.with("checksum", new_sum.as_str());

        if same_content {
            let Some(st) = st else {
                return Ok(outcome);
            };
            return attrs_only(ctx, outcome, &dest, &st, &want, umask);
        }

        // New content: what the new file's mode will be, before `mode` is applied. A new
        // file gets the umask default; a replaced one keeps its mode, or takes the source's
        // with remote_src (Ansible's atomic_move without keep_dest_attrs).
        let base_perm = match (&src_stat, &st) {
            (Some(sst), Some(_)) => sst.perm,
            (None, Some(old)) if old.kind == FileKind::File => old.perm,
            _ => 0o666 & !umask,
        };
        let mode = match &want.mode {
            Some(spec) => Some(
                spec.resolve(base_perm, false, umask)
                    .map_err(ModuleError::Args)?,
            ),
            None if src_stat.is_some() => Some(base_perm),
            None => st.as_ref().map(|_| base_perm),
        };
        outcome.changed = true;
        if ctx.diff {
            if let (Source::Bytes(data), false) = (&source, a.remote_src) {
                let before = r.rest("before").unwrap_or_default();
                if let (Some(before), Some(after)) = (diff_text(before), diff_text(data)) {
                    let mut d = file_diff(&dest, before, after);
                    if let Some(src) = &a._src {
                        d.after_header = src.clone();
                    }
                    if st.is_none() {
                        // A new file: Ansible's header is a bare "before".
                        d.before_header.clear();
                    }
                    outcome.diffs.push(d);
                }
            }
        }
        if ctx.check {
            if make_parents {
                outcome = outcome.with_msg(format!("dest directory {parent} would be created"));
            }
            if let Some(st) = &st {
                outcome.result.extend(path_info(st));
            }
            return Ok(outcome);
        }
        if r.get("pw").is_none() && parent_ok {
            return Ok(Outcome::failed(format!(
                "Destination {parent} not writable"
            )));
        }

        if make_parents {
            // New parents get directory_mode (not mode) and the asked owner/group.
            let new_dir = WantAttrs {
                mode: directory_mode,
                ..want.clone()
            }
            .plan_new(true, umask)
            .map_err(ModuleError::Args)?;
            let script = Script::new()
                .raw(PRELUDE)
                .then(mkdirs_script(&parent, &new_dir));
            let out = ctx.host.exec(&Cmd::script(script))?;
            let r = Records::parse(&out.stdout);
            if let Some(what) = r.get("fail") {
                let stderr = out.stderr_str();
                let msg = match what {
                    "mkdir" => format!(
                        "There was an issue creating {} as requested: {}",
                        r.get("cur").unwrap_or(&parent),
                        last_reason(&stderr)
                    ),
                    other => attr_failure_msg(other, &want, &stderr),
                };
                return Ok(Outcome::failed(msg));
            }
        }

        let tmp = join_path(&parent, &temp_name());
        // A replaced file's mode, the source's (remote_src), or the umask default; then `mode`.
        let new_mode = mode.unwrap_or(base_perm);
        if let Source::Bytes(data) = &source {
            // The bytes and the mode: the script below renames the file into place, so the
            // transfer needs no command of its own.
            match ctx.host.put_new(data, &tmp, new_mode) {
                Ok(()) => {}
                Err(HostError::Transfer(msg)) => return Ok(Outcome::failed(msg)),
                Err(e) => return Err(e.into()),
            }
        }
        let mut script = Script::new()
            .raw(PRELUDE)
            .set("t", &tmp)
            .set("d", &dest)
            .raw("\ntrap 'rm -f -- \"$t\"' EXIT\n");
        if let Source::Remote(s) = &source {
            script = script
                .set("s", r.get("xsrc").unwrap_or(s))
                .raw("\ncp -- \"$s\" \"$t\" || __fail cp\n")
                .raw("touch -r \"$s\" -- \"$t\" 2>/dev/null\n")
                .raw("chmod --")
                .arg(format!("{new_mode:o}"))
                .raw("\"$t\" || __fail chmod\n");
        }
        // Ansible keeps the replaced file's owner and group (when it may: as root).
        if let (Some(old), Source::Bytes(_), Some("0")) = (&st, &source, r.get("uid")) {
            script = script
                .raw("chown --")
                .arg(format!("{}:{}", old.uid, old.gid))
                .raw("\"$t\" 2>/dev/null\n");
        }
        let ownership = AttrPlan {
            owner: want.owner.clone().map(|o| (String::new(), o)),
            group: want.group.clone().map(|g| (String::new(), g)),
            mode: None,
        };
        script = script.then(ownership.script(&tmp));
        if let Some(validate) = &validate {
            script = script
                .raw("__vo=$(")
                .cmd(&validate.argv(&tmp))
                .raw(")\n__vr=$?; if [ \"$__vr\" -ne 0 ]; then __kv vrc \"$__vr\"; __kv vout \"$__vo\"; exit 1; fi\n");
        }
        if a.backup {
            script = script.raw("if [ -e \"$d\" ]; then __backup \"$d\" || __fail backup; fi\n");
        }
        script = script.raw("mv -f -- \"$t\" \"$d\" || __fail mv\ntrap - EXIT\n__kst fin \"$d\"\n");
        let out = ctx.host.exec(&Cmd::script(script))?;
        let r = Records::parse(&out.stdout);
        if let Some(rc) = r.get("vrc") {
            let stdout = r.get("vout").unwrap_or_default().to_string();
            let stderr = out.stderr_str();
            let rc: i64 = rc.parse().unwrap_or(1);
            return Ok(Outcome::failed("failed to validate")
                .with("checksum", new_sum)
                .with("exit_status", rc)
                .with("stdout", stdout.as_str())
                .with("stdout_lines", lines(&stdout))
                .with("stderr", stderr.as_str())
                .with("stderr_lines", lines(&stderr)));
        }
        if let Some(what) = r.get("fail") {
            let stderr = out.stderr_str();
            let msg = match what {
                "backup" => backup_failure_msg(&dest, &r, &stderr),
                "mv" | "cp" => format!(
                    "Failed to copy {} to {}: {}",
                    super::common::py_repr(result_src.as_deref().unwrap_or(&tmp)),
                    super::common::py_repr(&dest),
                    last_reason(&stderr)
                ),
                other => attr_failure_msg(other, &want, &stderr),
            };
            return Ok(Outcome::failed(msg).with("dest", dest.as_str()));
        }
        if !out.success() {
            return Ok(Outcome::failed(format!(
                "Failed to copy to {dest}: {}",
                out.stderr_str().trim()
            )));
        }
        if let Some(backup) = r.get("backup") {
            outcome = outcome.with("backup_file", backup);
        }
        if let Some(st) = r.stat("fin").present() {
            outcome.result.extend(path_info(st));
        }
        Ok(outcome)
    }
}

/// Ansible's message for content (no file name) aimed at a directory.
const CONTENT_TO_DIR: &str = "can not use content with a dir as dest";

/// The bytes to write, or Ansible's refusal (as `Ok(Err(outcome))`).
fn source(a: &CopyArgs) -> Result<Result<Source, Outcome>, ModuleError> {
    if let Some(b64) = &a._content_b64 {
        let data = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| ModuleError::Args(format!("_content_b64 is not valid base64: {e}")))?;
        return Ok(Ok(Source::Bytes(data)));
    }
    let content = a.content.as_ref().filter(|c| !c.is_null());
    match (content, &a.src) {
        (Some(_), Some(_)) => Ok(Err(Outcome::failed(
            "src and content are mutually exclusive",
        ))),
        (Some(c), None) => Ok(Ok(Source::Bytes(content_bytes(c)))),
        (None, Some(src)) if a.remote_src => Ok(Ok(Source::Remote(src.clone()))),
        (None, Some(src)) => Err(ModuleError::Failed(format!(
            "the controller file {src} was not transferred: the engine passes src files as _content_b64"
        ))),
        (None, None) => Ok(Err(Outcome::failed("src (or content) is required"))),
    }
}

/// `content` as Ansible writes it: strings as they are, lists and dicts as Python's
/// `json.dumps`, other scalars as Python prints them.
fn content_bytes(content: &Value) -> Vec<u8> {
    match content {
        Value::Array(_) | Value::Object(_) => py_json(content).into_bytes(),
        other => args::ansible_str(other).unwrap_or_default().into_bytes(),
    }
}

/// Python's `json.dumps` with its defaults (`", "`/`": "` separators, ASCII only).
fn py_json(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_json).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_json(&Value::String(k.clone())), py_json(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Text for a diff, or `None` for content a diff cannot show (binary, too large).
fn diff_text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_DIFF_SIZE || data.contains(&0) {
        return None;
    }
    std::str::from_utf8(data).ok()
}

/// A temporary name for the new file, in the destination's directory (so the final
/// rename is atomic).
fn temp_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(".play-tmp-{}-{nanos}", std::process::id())
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The content is in place: fix only owner, group and mode (Ansible hands this to `file`,
/// whose result has `path` besides `dest`, and whose diff is the attribute dict).
fn attrs_only(
    ctx: &mut Ctx<'_>,
    mut outcome: Outcome,
    dest: &str,
    st: &PathStat,
    want: &WantAttrs,
    umask: u32,
) -> Result<Outcome, ModuleError> {
    outcome = outcome.with("path", dest);
    let plan = want.plan(st, umask).map_err(ModuleError::Args)?;
    if plan.is_empty() {
        outcome.result.extend(path_info(st));
        return Ok(outcome);
    }
    outcome.changed = true;
    if ctx.diff {
        let mut before = Map::new();
        before.insert("path".into(), json!(dest));
        let mut after = before.clone();
        plan.diff_into(&mut before, &mut after);
        outcome.diffs.extend(state_diff(&before, &after));
    }
    if ctx.check {
        outcome.result.extend(path_info(st));
        return Ok(outcome);
    }
    let script = Script::new()
        .raw(PRELUDE)
        .then(plan.script(dest))
        .set("d", dest)
        .raw("\n__kst fin \"$d\"\n");
    let out = ctx.host.exec(&Cmd::script(script))?;
    let r = Records::parse(&out.stdout);
    if let Some(what) = r.get("fail") {
        let mut failed = Outcome::failed(attr_failure_msg(what, want, &out.stderr_str()));
        failed.result = outcome.result;
        failed.result.extend(path_info(st));
        return Ok(failed);
    }
    if let Some(fin) = r.stat("fin").present() {
        outcome.result.extend(path_info(fin));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit::{self, run_on, CountingHost};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    const HOSTILE: &str = "a 'b' \"c\" $(x) `y`\nz";

    fn run_with(args: Value, check: bool, diff: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&Copy, args, check, diff)
    }

    fn run(args: Value) -> Outcome {
        run_with(args, false, true).expect("runs")
    }

    fn s(p: &Path) -> String {
        p.to_str().expect("utf-8 path").to_string()
    }

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).expect("exists").permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn content_and_content_b64_behave_the_same() {
        let text = "line 1\n'quoted' \"double\" $(not run) `nor this`\n";
        for how in ["content", "_content_b64"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let dest = dir.path().join(HOSTILE);
            let args = if how == "content" {
                json!({"dest": s(&dest), "content": text, "mode": "0640"})
            } else {
                json!({"dest": s(&dest), "_content_b64": b64(text.as_bytes()), "mode": "0640"})
            };

            let out = run_with(args.clone(), true, true).expect("runs");
            assert!(out.changed, "{how}: check mode reports the change");
            assert!(!dest.exists(), "{how}: check mode writes nothing");
            assert_eq!(out.diffs.len(), 1);
            assert_eq!(
                (out.diffs[0].before.as_str(), out.diffs[0].after.as_str()),
                ("", text)
            );

            let out = run(args.clone());
            assert!(out.changed && !out.failed, "{how}: {out:?}");
            assert_eq!(std::fs::read_to_string(&dest).expect("read"), text);
            assert_eq!(mode_of(&dest), 0o640);
            assert_eq!(out.result["dest"], json!(s(&dest)));
            assert_eq!(out.result["checksum"], json!(sha1_hex(text.as_bytes())));
            assert_eq!(out.result["size"], json!(text.len()));
            assert_eq!(out.result["mode"], json!("0640"));
            assert_eq!(out.result["state"], json!("file"));
            assert!(out.result.contains_key("owner") && out.result.contains_key("gid"));
            assert_eq!(
                names(dir.path()),
                vec![HOSTILE.to_string()],
                "no temp file left"
            );

            let out = run(args);
            assert!(
                !out.changed && out.diffs.is_empty(),
                "{how}: second run is ok"
            );
            assert_eq!(out.result["path"], json!(s(&dest)));
        }
    }

    #[test]
    fn same_content_with_another_mode_only_fixes_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"same\n").expect("write");
        std::fs::set_permissions(&dest, PermissionsExt::from_mode(0o600)).expect("chmod");
        let inode = std::fs::metadata(&dest).expect("meta").ino();
        let args = json!({"dest": s(&dest), "content": "same\n", "mode": "u=rw,go=r"});

        let out = run_with(args.clone(), true, true).expect("runs");
        assert!(out.changed);
        assert_eq!(mode_of(&dest), 0o600);

        let out = run(args.clone());
        assert!(out.changed);
        assert_eq!(mode_of(&dest), 0o644);
        assert_eq!(
            std::fs::metadata(&dest).expect("meta").ino(),
            inode,
            "not rewritten"
        );
        assert!(out.diffs[0].before.contains("\"mode\": \"0600\""));
        assert!(out.diffs[0].after.contains("\"mode\": \"0644\""));
        assert!(!run(args).changed);
    }

    #[test]
    fn binary_content_is_written_intact_and_not_diffed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("bin");
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let args = json!({"dest": s(&dest), "_content_b64": b64(&data), "_src": "/ctl/bin.dat"});
        let out = run(args.clone());
        assert!(out.changed && out.diffs.is_empty());
        assert_eq!(std::fs::read(&dest).expect("read"), data);
        assert_eq!(out.result["src"], json!("/ctl/bin.dat"));
        assert!(!run(args).changed);
    }

    #[test]
    fn replacing_keeps_the_old_mode_and_diffs_the_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"old\n").expect("write");
        std::fs::set_permissions(&dest, PermissionsExt::from_mode(0o600)).expect("chmod");
        let out = run(json!({"dest": s(&dest), "_content_b64": b64(b"new\n"), "_src": "files/f"}));
        assert!(out.changed);
        assert_eq!(mode_of(&dest), 0o600);
        assert_eq!(out.diffs[0].before, "old\n");
        assert_eq!(out.diffs[0].after, "new\n");
        assert_eq!(out.diffs[0].before_header, s(&dest));
        assert_eq!(out.diffs[0].after_header, "files/f");
    }

    #[test]
    fn backup_is_made_beside_the_file_with_ansibles_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join(HOSTILE);
        std::fs::write(&dest, b"old").expect("write");
        let out = run(json!({"dest": s(&dest), "content": "new", "backup": true}));
        assert!(out.changed);
        let backup = out.result["backup_file"].as_str().expect("backup_file");
        let name = backup
            .strip_prefix(&format!("{}.", s(&dest)))
            .expect("beside");
        let re = regex::Regex::new(r"^\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$").expect("regex");
        assert!(re.is_match(name), "{name}");
        assert_eq!(std::fs::read(backup).expect("backup"), b"old");
        assert_eq!(std::fs::read(&dest).expect("dest"), b"new");
        let out = run(json!({"dest": s(&dest), "content": "new", "backup": true}));
        assert!(!out.changed && !out.result.contains_key("backup_file"));
    }

    #[test]
    fn validate_runs_on_the_temp_file_and_failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("with space");
        std::fs::write(&dest, b"old").expect("write");
        let out = run(json!({"dest": s(&dest), "content": "bad", "validate": "grep -q good %s"}));
        assert!(out.failed);
        assert_eq!(out.msg.as_deref(), Some("failed to validate"));
        assert_eq!(out.result["exit_status"], json!(1));
        assert_eq!(std::fs::read(&dest).expect("dest"), b"old");
        assert_eq!(names(dir.path()), vec!["with space"], "temp file removed");

        let out = run(
            json!({"dest": s(&dest), "content": "good", "validate": "sh -c 'echo checked; grep -q good \"$1\"' sh %s"}),
        );
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(std::fs::read(&dest).expect("dest"), b"good");

        let out = run(json!({"dest": s(&dest), "content": "x", "validate": "true"}));
        assert_eq!(out.msg.as_deref(), Some("validate must contain %s: true"));
        assert_eq!(names(dir.path()), vec!["with space"]);
    }

    #[test]
    fn force_no_leaves_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"mine").expect("write");
        let out = run(json!({"dest": s(&dest), "content": "theirs", "force": false}));
        assert!(!out.changed && !out.failed);
        assert_eq!(std::fs::read(&dest).expect("dest"), b"mine");
        let new = dir.path().join("g");
        assert!(run(json!({"dest": s(&new), "content": "x", "force": false})).changed);
    }

    #[test]
    fn directories_take_the_source_basename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("existing dir");
        std::fs::create_dir(&sub).expect("mkdir");
        let args =
            json!({"dest": s(&sub), "_content_b64": b64(b"x"), "_src": "/ctl/files/app.conf"});
        let out = run(args.clone());
        assert_eq!(out.result["dest"], json!(format!("{}/app.conf", s(&sub))));
        assert!(sub.join("app.conf").is_file());
        assert!(!run(args).changed);

        let deep = dir.path().join("new").join("deeper");
        let args = json!({"dest": format!("{}/", s(&deep)), "_content_b64": b64(b"x"),
            "_src": "/ctl/app.conf", "directory_mode": "0700"});
        let out = run_with(args.clone(), true, false).expect("runs");
        assert!(out.changed && !deep.exists());
        assert_eq!(
            out.msg,
            Some(format!("dest directory {} would be created", s(&deep)))
        );
        let out = run(args.clone());
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(mode_of(&deep), 0o700);
        assert_eq!(mode_of(&dir.path().join("new")), 0o700);
        assert!(deep.join("app.conf").is_file());
        assert!(!run(args).changed);
    }

    #[test]
    fn remote_src_copies_on_the_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join(HOSTILE);
        std::fs::write(&src, b"remote\n").expect("write");
        let dest = dir.path().join("copy");
        let args = json!({"src": s(&src), "dest": s(&dest), "remote_src": true, "mode": "0600"});
        let out = run_with(args.clone(), true, true).expect("runs");
        assert!(out.changed && !dest.exists());
        let out = run(args.clone());
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(std::fs::read(&dest).expect("dest"), b"remote\n");
        assert_eq!(mode_of(&dest), 0o600);
        assert_eq!(out.result["src"], json!(s(&src)));
        assert_eq!(out.result["checksum"], json!(sha1_hex(b"remote\n")));
        assert!(!run(args).changed);
        let out = run(
            json!({"src": format!("{}/nope", s(dir.path())), "dest": s(&dest), "remote_src": true}),
        );
        assert_eq!(
            out.msg,
            Some(format!("Source {}/nope not found", s(dir.path())))
        );
    }

    #[test]
    fn a_symlink_dest_is_replaced_unless_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("target", &link).expect("symlink");
        let out = run(json!({"dest": s(&link), "content": "x", "follow": true}));
        assert!(!out.changed, "same content through the link");
        let out = run(json!({"dest": s(&link), "content": "x"}));
        assert!(out.changed);
        assert!(std::fs::symlink_metadata(&link).expect("meta").is_file());
        assert_eq!(std::fs::read(&target).expect("target"), b"x");
    }

    #[test]
    fn errors_use_ansibles_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = s(dir.path());
        let out = run(json!({"dest": format!("{d}/missing/f"), "content": "x"}));
        assert_eq!(
            out.msg,
            Some(format!("Destination directory {d}/missing does not exist"))
        );
        let out = run(json!({"dest": &d, "content": "x"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("can not use content with a dir as dest")
        );
        let out = run(json!({"dest": format!("{d}/f")}));
        assert_eq!(out.msg.as_deref(), Some("src (or content) is required"));
        let out = run(json!({"dest": format!("{d}/f"), "content": "x", "src": "y"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("src and content are mutually exclusive")
        );
        let out = run(json!({"dest": format!("{d}/f"), "content": "x", "owner": "no such user"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("chown failed: failed to look up user no such user")
        );
        assert_eq!(
            names(dir.path()),
            Vec::<String>::new(),
            "nothing left behind"
        );
        let out = run(json!({"dest": format!("{d}/f"), "content": "x", "checksum": "abc"}));
        assert_eq!(
            out.msg.as_deref(),
            Some("Copied file does not match the expected checksum. Transfer failed.")
        );
        let err = run_with(
            json!({"dest": "/x", "content": "x", "mode": "bogus"}),
            false,
            false,
        )
        .expect_err("bad mode");
        assert_eq!(err.to_string(), "mode must be in octal or symbolic form");
        let err = run_with(json!({"content": "x"}), false, false).expect_err("no dest");
        assert_eq!(err.to_string(), "missing required arguments: dest");
    }

    #[test]
    fn content_of_other_types_is_written_as_ansible_does() {
        assert_eq!(
            content_bytes(&json!({"a": [1, "é", null]})),
            br#"{"a": [1, "\u00e9", null]}"#
        );
        assert_eq!(content_bytes(&json!(true)), b"True");
        assert_eq!(content_bytes(&json!(42)), b"42");
    }

    /// (execs, puts) of one run, to check the module's promises (one exec when converged).
    fn round_trips(args: &Value) -> (usize, usize) {
        let mut host = CountingHost::new();
        let Value::Object(map) = args else {
            panic!("args must be an object")
        };
        run_on(&mut host, &Copy, map, false, true).expect("runs");
        (host.execs, host.puts)
    }

    #[test]
    fn round_trips_are_as_promised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = s(&dir.path().join("f"));
        let args = json!({"dest": &dest, "content": "x", "backup": true, "validate": "test -f %s"});
        assert_eq!(round_trips(&args), (2, 1), "changed: probe, put, finish");
        assert_eq!(round_trips(&args), (1, 0), "converged: one exec");
        let args = json!({"dest": &dest, "content": "x", "mode": "0600"});
        assert_eq!(round_trips(&args), (2, 0), "mode only: probe, chmod");
    }

    #[test]
    fn a_leading_tilde_in_dest_is_the_targets_home() {
        let home = std::env::var("HOME").expect("HOME");
        let dir = tempfile::tempdir_in(&home).expect("tempdir in HOME");
        let name = dir
            .path()
            .file_name()
            .expect("name")
            .to_str()
            .expect("utf-8");
        let args = json!({"dest": format!("~/{name}/f"), "content": "x"});
        let out = run(args.clone());
        assert!(out.changed);
        assert_eq!(out.result["dest"], json!(format!("{home}/{name}/f")));
        assert_eq!(std::fs::read(dir.path().join("f")).expect("written"), b"x");
        assert!(!run(args).changed);
    }
}
