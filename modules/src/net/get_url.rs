//! The `get_url` module: download a URL to a file ON THE TARGET (curl, or wget without
//! curl), with checksums, owner/group/mode and backups, replacing `dest` atomically.
//!
//! Round trips: one exec reads `dest` (stat, and its digest when a `checksum` is given; a
//! checksum URL is fetched in the same exec), which is all a task whose file is in place
//! costs. A download is one more exec: the file is fetched into a temporary file beside
//! `dest` (or in `tmp_dest`), its checksum verified, compared with `dest` by SHA-1, and only
//! then renamed over it; a failed request or a checksum mismatch removes the temporary file
//! and leaves `dest` as it was. With `force: true` the first exec is skipped.
//!
//! Where we differ from Ansible, on purpose:
//! - An existing `dest` without `force` is left alone ("file already exists") without
//!   contacting the server, as Ansible's documentation says. ansible-core 2.19 sends a
//!   conditional request (`If-Modified-Since`) and replaces the file when the server sends
//!   a different one.
//! - Check mode sends a HEAD request (as Ansible) and reports a change whenever the file would
//!   be downloaded.
//! - A symbolic `mode` is applied by the target's `chmod` to the downloaded file.
//! - `unredirected_headers` is accepted and ignored (curl drops credentials on redirects to
//!   another host by itself); `use_gssapi` is not supported.

use std::time::Instant;

use serde::Deserialize;

use super::{
    chmod_mode, header_pairs, mask_url, need_fetcher, url_path, Follow, Request, Response, Stdin,
    FETCH, PLACE, TEMP_DIR,
};
use crate::files::common::{
    attr_failure_msg, backup_failure_msg, last_reason, path_info, ChecksumAlgo, Records,
    StatResult, WantAttrs, PRELUDE,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `get_url`.
pub struct GetUrl;

fn yes() -> bool {
    true
}
fn ten() -> u64 {
    10
}
fn agent() -> String {
    super::ANSIBLE_AGENT.into()
}

#[derive(Debug, Deserialize)]
struct GetUrlArgs {
    url: String,
    dest: String,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    checksum: String,
    #[serde(default = "ten")]
    timeout: u64,
    headers: Option<Map>,
    tmp_dest: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    unredirected_headers: Vec<String>,
    #[serde(default = "yes")]
    decompress: bool,
    #[serde(default)]
    ciphers: Vec<String>,
    #[serde(default = "yes")]
    use_netrc: bool,
    #[serde(default)]
    force: bool,
    #[serde(default = "agent")]
    http_agent: String,
    #[serde(default = "yes")]
    use_proxy: bool,
    #[serde(default = "yes")]
    validate_certs: bool,
    #[serde(alias = "username")]
    url_username: Option<String>,
    #[serde(alias = "password")]
    url_password: Option<String>,
    #[serde(default)]
    force_basic_auth: bool,
    client_cert: Option<String>,
    client_key: Option<String>,
    #[serde(default)]
    use_gssapi: bool,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    attributes: Option<String>,
}

/// A parsed `checksum` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Checksum {
    None,
    Digest(ChecksumAlgo, String),
    /// The digest is looked up in a checksum file at this URL.
    Url(ChecksumAlgo, String),
}

impl Checksum {
    fn algo(&self) -> Option<ChecksumAlgo> {
        match self {
            Checksum::None => None,
            Checksum::Digest(a, _) | Checksum::Url(a, _) => Some(*a),
        }
    }
}

const ALGORITHMS: &str = "md5, sha1, sha224, sha256, sha384, sha512";

/// Read `checksum` as Ansible does: `<algorithm>:<digest or URL>`.
fn parse_checksum(value: &str, dest: &str) -> Result<Checksum, String> {
    if value.is_empty() {
        return Ok(Checksum::None);
    }
    let Some((alg, sum)) = value.split_once(':') else {
        return Err("The checksum parameter has to be in format <algorithm>:<checksum>".into());
    };
    let algo: ChecksumAlgo = match alg {
        "md5" => ChecksumAlgo::Md5,
        "sha1" => ChecksumAlgo::Sha1,
        "sha224" => ChecksumAlgo::Sha224,
        "sha256" => ChecksumAlgo::Sha256,
        "sha384" => ChecksumAlgo::Sha384,
        "sha512" => ChecksumAlgo::Sha512,
        other => {
            return Err(format!(
                "Could not hash file '{dest}' with algorithm '{other}'. Available algorithms: {ALGORITHMS}"
            ))
        }
    };
    if is_url(sum) {
        return Ok(Checksum::Url(algo, sum.to_string()));
    }
    normalize_digest(sum).map(|d| Checksum::Digest(algo, d))
}

/// Ansible's `is_url` for the checksum: a scheme it can fetch.
fn is_url(value: &str) -> bool {
    ["http", "https", "ftp", "file"]
        .iter()
        .any(|s| value.starts_with(&format!("{s}://")))
}

/// `re.sub(r'\W+', '', checksum).lower()`, which must then be hexadecimal.
fn normalize_digest(sum: &str) -> Result<String, String> {
    let digest: String = sum
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_lowercase();
    if digest.is_empty() || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("The checksum format is invalid".into());
    }
    Ok(digest)
}

/// Ansible's `url_filename`: the last part of the URL's path, `index.html` when empty.
fn url_filename(url: &str) -> String {
    let name = url_path(url).rsplit('/').next().unwrap_or("");
    if name.is_empty() {
        "index.html".into()
    } else {
        name.to_string()
    }
}

/// Ansible's `parse_digest_lines`: `(digest, file)` pairs of a checksum file in GNU
/// (`HEX  name`, `HEX *name`) or BSD (`SHA256 (name) = HEX`) format, or a lone digest.
fn parse_digest_lines(filename: &str, text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return vec![(lines[0].to_string(), filename.to_string())];
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for line in lines {
        // BSD: ALG ?(PATH) ?= DIGEST
        let alg_len = line.chars().take_while(|c| word(*c)).count();
        if alg_len > 0 {
            let rest = line[alg_len..]
                .strip_prefix(' ')
                .unwrap_or(&line[alg_len..]);
            if let Some(rest) = rest.strip_prefix('(') {
                if let Some(close) = rest.rfind(')') {
                    let path = &rest[..close];
                    let tail = &rest[close + 1..];
                    let tail = tail.strip_prefix(' ').unwrap_or(tail);
                    if let Some(digest) = tail.strip_prefix("= ") {
                        if !path.is_empty()
                            && !digest.is_empty()
                            && digest.chars().all(|c| word(c) || c == '.')
                        {
                            out.push((digest.to_string(), path.to_string()));
                            continue;
                        }
                    }
                }
            }
        }
        // GNU: DIGEST\s+(\*|\./|\.)?PATH
        let digest_len = line
            .chars()
            .take_while(|c| word(*c) || *c == '.')
            .map(char::len_utf8)
            .sum::<usize>();
        if digest_len == 0 {
            continue;
        }
        let rest = &line[digest_len..];
        let trimmed = rest.trim_start();
        if trimmed.len() == rest.len() || trimmed.is_empty() {
            continue;
        }
        let path = trimmed
            .strip_prefix('*')
            .or_else(|| trimmed.strip_prefix("./"))
            .or_else(|| trimmed.strip_prefix('.').filter(|p| !p.is_empty()))
            .unwrap_or(trimmed);
        if path.is_empty() {
            continue;
        }
        out.push((
            line[..digest_len].to_string(),
            path.trim_start_matches(['.', '/']).to_string(),
        ));
    }
    out
}

impl Module for GetUrl {
    fn name(&self) -> &'static str {
        "get_url"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<GetUrlArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: GetUrlArgs = args::parse("get_url", args)?;
        if a.use_gssapi {
            return Err(ModuleError::Args(
                "use_gssapi is not supported: play downloads with curl or wget on the target"
                    .into(),
            ));
        }
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let masked = mask_url(&a.url);
        let base = |dest: &str| {
            Outcome::ok()
                .with("checksum_dest", Value::Null)
                .with("checksum_src", Value::Null)
                .with("dest", dest)
                .with("elapsed", 0)
                .with("url", masked.as_str())
        };
        let checksum = match parse_checksum(&a.checksum, &a.dest) {
            Ok(c) => c,
            Err(msg) => return Ok(failing(base(&a.dest), msg)),
        };
        let mut request = Request::get(&a.url);
        request.headers = header_pairs(a.headers.as_ref())?;
        request.username = a.url_username.clone().filter(|u| !u.is_empty());
        request.password = a.url_password.clone();
        request.force_basic_auth = a.force_basic_auth;
        request.validate_certs = a.validate_certs;
        request.timeout = a.timeout;
        request.follow = Follow::All;
        request.use_netrc = a.use_netrc;
        request.use_proxy = a.use_proxy;
        request.decompress = a.decompress;
        request.http_agent = a.http_agent.clone();
        request.ciphers = a.ciphers.clone();
        request.client_cert = a.client_cert.clone();
        request.client_key = a.client_key.clone();
        if let Err(msg) = request.validate() {
            return Ok(failing(base(&a.dest), msg));
        }

        // Without force, an existing file (with the right digest) is left alone. A checksum
        // file is read first in any case.
        let mut digest = match &checksum {
            Checksum::Digest(_, d) => Some(d.clone()),
            _ => None,
        };
        if !a.force || matches!(checksum, Checksum::Url(..)) {
            let probe = probe(ctx, &a, &checksum, &request)?;
            if let Some(failed) = probe.failed {
                return Ok(failed.with("dest", a.dest.as_str()));
            }
            if let Checksum::Url(_, sums_url) = &checksum {
                let filename = url_filename(&a.url);
                let found = parse_digest_lines(&filename, probe.sums.as_deref().unwrap_or(""))
                    .into_iter()
                    .find(|(_, f)| *f == filename);
                match found {
                    Some((d, _)) => match normalize_digest(&d) {
                        Ok(d) => digest = Some(d),
                        Err(msg) => return Ok(failing(base(&probe.path), msg)),
                    },
                    None => {
                        return Ok(Outcome::failed(format!(
                            "Unable to find a checksum for file '{filename}' in '{}'",
                            mask_url(sums_url)
                        )))
                    }
                }
            }
            if let Some(st) = probe.stat.filter(|st| !st.is_dir() && !a.force) {
                let matches = match (&digest, &probe.dest_digest) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if matches {
                    return file_exists(
                        ctx,
                        base(&probe.path),
                        &probe.path,
                        &st,
                        &want,
                        probe.umask,
                    );
                }
            }
        }
        download(ctx, &a, &request, &checksum, digest.as_deref(), &want)
    }
}

/// `out` failed with `msg`, its result keys kept.
fn failing(mut out: Outcome, msg: String) -> Outcome {
    out.failed = true;
    out.msg = Some(msg);
    out
}

/// What the first exec found.
struct Probe {
    path: String,
    stat: Option<crate::files::common::PathStat>,
    dest_digest: Option<String>,
    umask: u32,
    sums: Option<String>,
    failed: Option<Outcome>,
}

fn probe(
    ctx: &mut Ctx<'_>,
    a: &GetUrlArgs,
    checksum: &Checksum,
    request: &Request,
) -> Result<Probe, ModuleError> {
    let mut s = Script::new().raw(PRELUDE);
    let mut stdin = Stdin::default();
    let sums_request = match checksum {
        Checksum::Url(_, url) => {
            let mut r = request.clone();
            r.url = url.clone();
            Some(r)
        }
        _ => None,
    };
    if let Some(algo) = checksum.algo() {
        s = s.need(algo.command());
    }
    if let Some(r) = &sums_request {
        s = need_fetcher(s).raw(FETCH).raw(TEMP_DIR);
        r.stdin_parts(&mut stdin);
        s = s
            .then(stdin.script())
            .raw("__fetch \"$T/sums\" \"$T/sumhdr\"\n__kvc sums cat \"$T/sums\"\n");
    }
    s = s
        .set("d", &a.dest)
        .set("alg", checksum.algo().map_or("", ChecksumAlgo::command))
        .raw(
            "\n__tilde \"$d\"; d=$__o; __kv path \"$d\"; __kstL st \"$d\"; __kumask\n\
             if [ -n \"$alg\" ] && [ -f \"$d\" ]; then __sumv \"$alg\" \"$d\"; __kv dsum \"$__o\"; fi\n",
        );
    let mut cmd = Cmd::script(s);
    if sums_request.is_some() {
        cmd = if request.has_secret() {
            cmd.secret_stdin(stdin.bytes())
        } else {
            cmd.stdin(stdin.bytes())
        };
    }
    let out = ctx.host.exec(&cmd)?;
    crate::tools::missing_tool(&out)?;
    let r = Records::parse(&out.stdout);
    let path = r.get("path").unwrap_or(&a.dest).to_string();
    let mut probe = Probe {
        path: path.clone(),
        stat: None,
        dest_digest: r.get("dsum").filter(|d| !d.is_empty()).map(str::to_string),
        umask: r.umask(),
        sums: None,
        failed: None,
    };
    if r.get("fail") == Some("tmpdir") {
        probe.failed = Some(Outcome::failed(format!(
            "could not create a temporary directory: {}",
            last_reason(&out.stderr_str())
        )));
        return Ok(probe);
    }
    match r.stat("st") {
        StatResult::Present(st) => probe.stat = Some(st),
        StatResult::Absent => {}
        StatResult::Error(msg) => {
            probe.failed = Some(Outcome::failed(msg));
            return Ok(probe);
        }
    }
    if let (Some(r2), Some(_)) = (&sums_request, r.get("tool")) {
        let resp = Response::from_records(&r, &r2.url);
        if let Some(failed) = request_failure(&resp, &r2.url, &path) {
            probe.failed = Some(failed);
            return Ok(probe);
        }
        probe.sums = Some(r.get("sums").unwrap_or_default().to_string());
    }
    Ok(probe)
}

/// Ansible's failure for a request that did not answer 200.
fn request_failure(resp: &Response, url: &str, dest: &str) -> Option<Outcome> {
    if resp.error.is_some() {
        return Some(
            Outcome::failed(resp.msg())
                .with("url", mask_url(url))
                .with("dest", dest)
                .with("elapsed", 0),
        );
    }
    if resp.status != 200 && !url.starts_with("file:/") {
        return Some(
            Outcome::failed("Request failed")
                .with("status_code", resp.status)
                .with("response", resp.msg())
                .with("url", mask_url(url))
                .with("dest", dest)
                .with("elapsed", 0),
        );
    }
    None
}

/// `dest` is in place: only owner, group and mode may still change.
fn file_exists(
    ctx: &mut Ctx<'_>,
    mut out: Outcome,
    path: &str,
    st: &crate::files::common::PathStat,
    want: &WantAttrs,
    umask: u32,
) -> Result<Outcome, ModuleError> {
    let plan = want.plan(st, umask).map_err(ModuleError::Args)?;
    if plan.is_empty() {
        out.result.extend(path_info(st));
        return Ok(out.with_msg("file already exists"));
    }
    out.changed = true;
    out = out.with_msg("file already exists but file attributes changed");
    if ctx.check {
        out.result.extend(path_info(st));
        return Ok(out);
    }
    let script = Script::new()
        .raw(PRELUDE)
        .then(plan.script(path))
        .raw("__kst fin")
        .arg(path);
    let res = ctx.host.exec(&Cmd::script(script))?;
    let r = Records::parse(&res.stdout);
    if let Some(what) = r.get("fail") {
        return Ok(
            Outcome::failed(attr_failure_msg(what, want, &res.stderr_str())).with("dest", path),
        );
    }
    if let Some(st) = r.stat("fin").present() {
        out.result.extend(path_info(st));
    }
    Ok(out)
}

/// The download script's logic after the request's files are in `$T` (see [`download`]).
///
/// Inputs: `d` dest, `td` tmp_dest, `alg` digest command, `want` expected digest, `check`,
/// `backup`, `m`/`o`/`g` mode (for chmod), owner, group; `u0` the URL.
const DOWNLOAD: &str = r#"
__tilde "$d"; d=$__o; __kv dpath "$d"
if [ -n "$td" ]; then
  __tilde "$td"; td=$__o
  if [ ! -d "$td" ]; then __kv tdp "$td"; if [ -e "$td" ]; then __fail tdfile; else __fail tdmissing; fi; fi
fi
if [ -d "$d" ]; then isdir=1; pd=$d; __kv isdir 1; else isdir=; case $d in */*) pd=${d%/*}; pd=${pd:-/};; *) pd=.;; esac; fi
__kv pdir "$pd"
[ -d "$pd" ] || __fail parent
[ -w "$pd" ] || __fail pdw
if [ -n "$check" ]; then __head=1; __fetch /dev/null "$T/hdr"; exit 0; fi
tmp=$(umask 077; mktemp "${td:-$pd}/.play-tmp-XXXXXXXX") || __fail mktemp
trap 'rm -rf -- "$T"; rm -f -- "$tmp"' EXIT
__kv src "$tmp"
__fetch "$tmp" "$T/hdr"
[ "$__frc" = 0 ] || __fail fetch
__code "$T/hdr"
case $u0 in file:/*) ;; *) [ "$__o" = 200 ] || __fail fetch;; esac
if [ -n "$isdir" ]; then
  if [ -n "$__w" ]; then __u0=${__w#* }; __u0=${__u0#* }
  else __u0=$(awk 'tolower($1) == "location:" { v = $2 } END { print v }' "$T/hdr" | tr -d '\r'); __u0=${__u0:-$u0}; fi
  __respname "$T/hdr" "$__u0"; d=$d/${__o:-index.html}
fi
__kv path "$d"
if [ -n "$alg" ]; then
  __sumv "$alg" "$tmp"
  if [ "$__o" != "$want" ]; then __kv got "$__o"; __fail sum; fi
fi
__sumv sha1sum "$tmp"; csrc=$__o; __kv csrc "$csrc"; cdest=
if [ -e "$d" ]; then
  [ -w "$d" ] || __fail dnw
  [ -r "$d" ] || __fail dnr
  __sumv sha1sum "$d"; cdest=$__o; __kv cdest "$cdest"
fi
if [ "$csrc" != "$cdest" ]; then
  if [ -n "$td" ] && [ "$td" != "$pd" ]; then
    t2=$(umask 077; mktemp "$pd/.play-tmp-XXXXXXXX") || __fail mktemp
    cp -- "$tmp" "$t2" || { rm -f -- "$t2"; __fail mv; }
    rm -f -- "$tmp"; tmp=$t2
  fi
  __place "$tmp" "$d"
else
  rm -f -- "$tmp"
fi
__attrs "$d"
__sumv md5sum "$d"; __kv md5 "$__o"
__kst fin "$d"
"#;

fn download(
    ctx: &mut Ctx<'_>,
    a: &GetUrlArgs,
    request: &Request,
    checksum: &Checksum,
    digest: Option<&str>,
    want: &WantAttrs,
) -> Result<Outcome, ModuleError> {
    let mut req = request.clone();
    if ctx.check {
        req.method = "HEAD".into();
    }
    let mut stdin = Stdin::default();
    req.stdin_parts(&mut stdin);
    let mode = chmod_mode(want);
    let mut s = Script::new().raw(PRELUDE);
    s = need_fetcher(s);
    if let Some(algo) = checksum.algo() {
        s = s.need(algo.command());
    }
    s = s
        .need("sha1sum")
        .raw(FETCH)
        .raw(PLACE)
        .raw(TEMP_DIR)
        .then(stdin.script())
        .set("d", &a.dest)
        .raw(";")
        .set("td", a.tmp_dest.as_deref().unwrap_or(""))
        .raw(";")
        .set("alg", checksum.algo().map_or("", ChecksumAlgo::command))
        .raw(";")
        .set("want", digest.unwrap_or(""))
        .raw(";")
        .set("check", if ctx.check { "1" } else { "" })
        .raw(";")
        .set("backup", if a.backup { "1" } else { "" })
        .raw(";")
        .set("m", &mode)
        .raw(";")
        .set("o", want.owner.as_deref().unwrap_or(""))
        .raw(";")
        .set("g", want.group.as_deref().unwrap_or(""))
        .raw(";")
        .set("u0", mask_url(&a.url))
        .raw(DOWNLOAD);
    let cmd = Cmd::script(s);
    let cmd = if req.has_secret() {
        cmd.secret_stdin(stdin.bytes())
    } else {
        cmd.stdin(stdin.bytes())
    };
    let start = Instant::now();
    let out = ctx.host.exec(&cmd)?;
    let elapsed = super::elapsed_secs(start);
    crate::tools::missing_tool(&out)?;
    let r = Records::parse(&out.stdout);
    let stderr = out.stderr_str();
    let masked = mask_url(&a.url);
    let dest = r.get("path").unwrap_or(&a.dest).to_string();
    let result = |o: Outcome| {
        o.with(
            "checksum_dest",
            r.get("cdest").map_or(Value::Null, Value::from),
        )
        .with(
            "checksum_src",
            r.get("csrc").map_or(Value::Null, Value::from),
        )
        .with("dest", dest.as_str())
        .with("elapsed", elapsed)
        .with("url", masked.as_str())
    };
    if let Some(what) = r.get("fail") {
        let pdir = r.get("pdir").unwrap_or_default();
        let msg = match what {
            "tmpdir" | "mktemp" => format!(
                "failed to create temporary content file: {}",
                last_reason(&stderr)
            ),
            "tdfile" => format!(
                "{} is a file but should be a directory.",
                r.get("tdp").unwrap_or_default()
            ),
            "tdmissing" => format!(
                "{} directory does not exist.",
                r.get("tdp").unwrap_or_default()
            ),
            "parent" => format!("Destination {pdir} does not exist"),
            "pdw" => format!("Destination {pdir} is not writable"),
            "dnw" => format!("Destination {dest} is not writable"),
            "dnr" => format!("Destination {dest} is not readable"),
            "fetch" => {
                let resp = Response::from_records(&r, &a.url);
                let failed = request_failure(&resp, &a.url, &dest)
                    .unwrap_or_else(|| Outcome::failed("Request failed"));
                return Ok(failed.with("elapsed", elapsed));
            }
            "sum" => format!(
                "The checksum for {} did not match {}; it was {}.",
                r.get("src").unwrap_or_default(),
                digest.unwrap_or_default(),
                r.get("got").unwrap_or_default()
            ),
            "backup" => backup_failure_msg(&dest, &r, &stderr),
            "mv" => format!(
                "failed to copy {} to {dest}: {}",
                r.get("src").unwrap_or_default(),
                last_reason(&stderr)
            ),
            other => attr_failure_msg(other, want, &stderr),
        };
        return Ok(result(Outcome::failed(msg)));
    }
    if !out.success() {
        return Ok(result(Outcome::failed(format!(
            "download failed: {}",
            stderr.trim()
        ))));
    }
    let resp = Response::from_records(&r, &a.url);
    if ctx.check {
        if let Some(failed) = request_failure(&resp, &a.url, &dest) {
            return Ok(failed);
        }
        let mut dest = r.get("dpath").unwrap_or(&a.dest).to_string();
        if r.get("isdir").is_some() {
            // A directory dest: the name comes from the response.
            let name = resp
                .disposition_filename()
                .unwrap_or_else(|| url_filename(&resp.url));
            dest = crate::files::common::join_path(&dest, &name);
        }
        let mut o = Outcome::changed(true)
            .with("checksum_dest", Value::Null)
            .with("checksum_src", Value::Null)
            .with("dest", dest.as_str())
            .with("elapsed", elapsed)
            .with("url", masked.as_str());
        o.msg = Some(resp.msg());
        return Ok(o);
    }
    let mut o = result(Outcome::changed(
        r.get("moved").is_some() || r.get("attr").is_some(),
    ));
    o = o.with("src", r.get("src").unwrap_or_default());
    o = o.with("md5sum", r.get("md5").unwrap_or_default());
    if let Some(backup) = r.get("backup") {
        o = o.with("backup_file", backup);
    }
    o = o.with("status_code", resp.status);
    o.msg = Some(resp.msg());
    if let Some(st) = r.stat("fin").present() {
        o.result.extend(path_info(st));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_parse_like_ansible() {
        assert_eq!(
            parse_checksum("sha256:AB\u{200b}cd", "/d"),
            Ok(Checksum::Digest(ChecksumAlgo::Sha256, "abcd".into()))
        );
        assert_eq!(
            parse_checksum("sha256:http://h/sums", "/d"),
            Ok(Checksum::Url(ChecksumAlgo::Sha256, "http://h/sums".into()))
        );
        assert_eq!(
            parse_checksum("abc", "/d"),
            Err("The checksum parameter has to be in format <algorithm>:<checksum>".into())
        );
        assert_eq!(
            parse_checksum("sha256:xyz", "/d"),
            Err("The checksum format is invalid".into())
        );
        assert!(parse_checksum("crc:00", "/d")
            .expect_err("refused")
            .starts_with("Could not hash file '/d' with algorithm 'crc'"));
        assert_eq!(parse_checksum("", "/d"), Ok(Checksum::None));
    }

    #[test]
    fn digest_files_in_every_format() {
        let gnu = "aaa  other.tgz\nbbb *file.tgz\nccc  ./sub/x\n";
        assert_eq!(
            parse_digest_lines("file.tgz", gnu),
            vec![
                ("aaa".to_string(), "other.tgz".to_string()),
                ("bbb".to_string(), "file.tgz".to_string()),
                ("ccc".to_string(), "sub/x".to_string()),
            ]
        );
        let bsd = "SHA256 (file.tgz) = 0123abc\n";
        assert_eq!(
            parse_digest_lines("file.tgz", bsd),
            vec![("0123abc".to_string(), "file.tgz".to_string())]
        );
        assert_eq!(
            parse_digest_lines("f", "deadbeef\n"),
            vec![("deadbeef".to_string(), "f".to_string())]
        );
        assert_eq!(url_filename("http://h/a/b.tgz?x"), "b.tgz");
        assert_eq!(url_filename("http://h/"), "index.html");
    }
}

#[cfg(test)]
mod download_tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;
    use std::path::Path;
    use testbed::HttpServer;

    fn run(check: bool, args: Value) -> Map {
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check,
            diff: false,
            facts: &facts,
        };
        let Value::Object(map) = args else {
            panic!("object")
        };
        GetUrl.run(&mut ctx, &map).expect("runs").to_result()
    }

    fn sha256(data: &[u8]) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("sha256sum | cut -d' ' -f1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(data)?;
                c.wait_with_output()
            })
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Names in `dir` that are leftovers of a download.
    fn temps(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".play-tmp"))
            .collect()
    }

    #[test]
    fn downloads_once_then_leaves_the_file_alone() {
        let served = tempfile::tempdir().expect("tempdir");
        std::fs::write(served.path().join("f.txt"), "hello\n").expect("write");
        let server = HttpServer::start(served.path()).expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("a 'b' $(c)\n.txt");
        let d = dest.to_str().expect("utf-8");
        let url = server.url("/f.txt");
        let args = json!({"url": url, "dest": d, "headers": {"X-Odd": "a \"b\" 'c' $(d)"}});

        let r = run(true, args.clone());
        assert_eq!(
            (r["changed"].clone(), r.get("failed")),
            (json!(true), None),
            "{r:?}"
        );
        assert!(!dest.exists(), "check mode wrote the file");
        assert_eq!(server.requests()[0].method, "HEAD");

        let r = run(false, args.clone());
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["msg"], "OK (6 bytes)");
        assert_eq!(r["status_code"], 200);
        assert_eq!(
            r["checksum_src"],
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert_eq!(r["checksum_dest"], Value::Null);
        assert_eq!(r["md5sum"], "b1946ac92492d2347c6235b4d2611184");
        assert_eq!(r["size"], 6);
        assert_eq!(r["dest"], d);
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "hello\n");
        let get = server.requests().pop().expect("request");
        assert_eq!(get.header("x-odd"), Some("a \"b\" 'c' $(d)"));
        assert_eq!(get.header("user-agent"), Some("ansible-httpget"));

        let before = server.requests().len();
        let r = run(false, args.clone());
        assert_eq!(
            (r["changed"].clone(), r["msg"].clone()),
            (json!(false), json!("file already exists"))
        );
        assert_eq!(
            server.requests().len(),
            before,
            "an existing file is not fetched again"
        );

        // force: fetched again, replaced only when it differs.
        let forced = json!({"url": url, "dest": d, "force": true});
        let r = run(false, forced.clone());
        assert_eq!(r["changed"], false, "{r:?}");
        std::fs::write(served.path().join("f.txt"), "hello again\n").expect("write");
        let r = run(false, forced);
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(
            std::fs::read_to_string(&dest).expect("read"),
            "hello again\n"
        );
        assert!(temps(dir.path()).is_empty());

        // backup keeps the replaced file; tmp_dest holds the download until it is moved.
        std::fs::write(served.path().join("f.txt"), "third\n").expect("write");
        let staging = tempfile::tempdir().expect("tempdir");
        let r = run(
            false,
            json!({"url": url, "dest": d, "force": true, "backup": true,
                   "tmp_dest": staging.path().to_str().expect("utf-8")}),
        );
        assert_eq!(r["changed"], true, "{r:?}");
        let backup = r["backup_file"].as_str().expect("backup_file").to_string();
        assert_eq!(
            std::fs::read_to_string(&backup).expect("backup"),
            "hello again\n"
        );
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "third\n");
        assert_eq!(std::fs::read_dir(staging.path()).expect("ls").count(), 0);
        let r = run(
            false,
            json!({"url": url, "dest": d, "force": true, "tmp_dest": format!("{d}.nowhere")}),
        );
        assert_eq!(r["msg"], format!("{d}.nowhere directory does not exist."));
    }

    #[test]
    fn checksums_guard_the_destination() {
        let served = tempfile::tempdir().expect("tempdir");
        let data = b"archive bytes\n";
        std::fs::write(served.path().join("pkg.tgz"), data).expect("write");
        let good = sha256(data);
        std::fs::write(
            served.path().join("SHA256SUMS"),
            format!("0000  other.tgz\n{good}  pkg.tgz\n"),
        )
        .expect("write");
        let server = HttpServer::start(served.path()).expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("pkg.tgz");
        let d = dest.to_str().expect("utf-8");
        let url = server.url("/pkg.tgz");

        // A bad digest: nothing is left behind, an old file stays.
        std::fs::write(&dest, "old\n").expect("write");
        let bad = "0".repeat(64);
        let r = run(
            false,
            json!({"url": url, "dest": d, "checksum": format!("sha256:{bad}")}),
        );
        assert_eq!(r["failed"], true, "{r:?}");
        let msg = r["msg"].as_str().expect("msg");
        assert!(
            msg.starts_with("The checksum for ")
                && msg.ends_with(&format!(" did not match {bad}; it was {good}.")),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "old\n");
        assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));

        // The right digest replaces the mismatching file, then leaves it alone.
        let args = json!({"url": url, "dest": d, "checksum": format!("sha256:{}", good.to_uppercase()), "mode": "0640"});
        let r = run(false, args.clone());
        assert_eq!(
            (r["changed"].clone(), r.get("failed")),
            (json!(true), None),
            "{r:?}"
        );
        assert_eq!(r["mode"], "0640");
        let r = run(false, args);
        assert_eq!(
            (r["changed"].clone(), r["msg"].clone()),
            (json!(false), json!("file already exists"))
        );

        // A checksum file by URL.
        std::fs::remove_file(&dest).expect("rm");
        let sums = json!({"url": url, "dest": d, "checksum": format!("sha256:{}", server.url("/SHA256SUMS"))});
        let r = run(false, sums.clone());
        assert_eq!(
            (r["changed"].clone(), r.get("failed")),
            (json!(true), None),
            "{r:?}"
        );
        let r = run(false, sums);
        assert_eq!(r["changed"], false, "{r:?}");
        let r = run(
            false,
            json!({"url": url, "dest": d, "force": true, "checksum": format!("sha256:{}", server.url("/SHA256SUMS"))}),
        );
        assert_eq!(
            (r["changed"].clone(), r.get("failed")),
            (json!(false), None),
            "{r:?}"
        );
        assert_eq!(r["msg"], format!("OK ({} bytes)", data.len()));
        let r = run(
            false,
            json!({"url": server.url("/f.txt"), "dest": d, "checksum": format!("sha1:{}", server.url("/SHA256SUMS")), "force": false}),
        );
        assert_eq!(
            r["msg"],
            format!(
                "Unable to find a checksum for file 'f.txt' in '{}'",
                server.url("/SHA256SUMS")
            )
        );
    }

    #[test]
    fn http_errors_directories_and_credentials() {
        let served = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(served.path()).expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");

        let r = run(
            false,
            json!({"url": server.url("/missing.txt"), "dest": format!("{d}/x")}),
        );
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "Request failed");
        assert_eq!(r["status_code"], 404);
        assert_eq!(r["response"], "HTTP Error 404: Not Found");
        assert!(!dir.path().join("x").exists());
        assert!(temps(dir.path()).is_empty());

        // Into a directory: the name comes from the URL (after redirects).
        let r = run(false, json!({"url": server.url("/redirect/2"), "dest": d}));
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["dest"], format!("{d}/json"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("json")).expect("read"),
            testbed::HTTP_JSON_BODY
        );

        // Credentials travel in curl's config, not in an argv.
        let secret = "s3cr3t 'pw' $(x)";
        let r = run(
            false,
            json!({"url": server.url(&format!("/basic-auth/user/{}", "s3cr3t")), "dest": format!("{d}/auth"),
                   "url_username": "user", "url_password": "s3cr3t", "force_basic_auth": true}),
        );
        assert_eq!(r["changed"], true, "{r:?}");
        let r = run(
            false,
            json!({"url": server.url("/basic-auth/user/x"), "dest": format!("{d}/auth2"),
                   "url_username": "user", "url_password": secret}),
        );
        assert_eq!(r["status_code"], 401, "{r:?}");

        let r = run(
            false,
            json!({"url": "http://127.0.0.1:1/x", "dest": format!("{d}/refused")}),
        );
        assert_eq!(
            r["msg"],
            "Request failed: <urlopen error [Errno 111] Connection refused>"
        );
        let r = run(
            false,
            json!({"url": server.url("/status/200"), "dest": format!("{d}/no/such/dir")}),
        );
        assert_eq!(r["msg"], format!("Destination {d}/no/such does not exist"));
    }
}
