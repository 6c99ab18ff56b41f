//! The `uri` module: an HTTP request made ON THE TARGET with curl (one exec), its status,
//! headers and body returned as Ansible's `uri` returns them, the body optionally written
//! to `dest`.
//!
//! The request (URL, headers, credentials) reaches curl as a config file and the body as a
//! file, both written from the script's stdin (see `net`): neither is in an argv.
//!
//! Like Ansible's `uri`, the module does not support check mode (it is skipped there) and
//! reports `changed: false` unless it wrote `dest`.
//!
//! Where we differ from Ansible, on purpose:
//! - With `dest`, `changed` is true only when the file's content or attributes changed
//!   (Ansible reports a change whenever the response was written, even with the same bytes).
//!   No `If-Modified-Since` is sent for an existing `dest`.
//! - `body_format: form-multipart`, `src` from the controller (without `remote_src`),
//!   `use_gssapi` and `unix_socket` are not supported; `unredirected_headers` is ignored.
//! - A directory `dest` takes the file name from `Content-Disposition` or the URL's last
//!   path part as sent (not percent-decoded).

use std::time::Instant;

use serde::Deserialize;

use super::{
    chmod_mode, header_pairs, mask_url, Follow, Request, Response, Stdin, FETCH, PLACE, TEMP_DIR,
};
use crate::files::common::{
    attr_failure_msg, backup_failure_msg, last_reason, path_info, Records, WantAttrs, PRELUDE,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `uri`.
pub struct Uri;

fn yes() -> bool {
    true
}
fn thirty() -> u64 {
    30
}
fn agent() -> String {
    super::ANSIBLE_AGENT.into()
}
fn get() -> String {
    "GET".into()
}
fn safe() -> String {
    "safe".into()
}
fn ok_200() -> Vec<i64> {
    vec![200]
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    #[serde(rename = "form-urlencoded")]
    FormUrlencoded,
    #[serde(rename = "json")]
    Json,
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "form-multipart")]
    FormMultipart,
}

fn raw() -> BodyFormat {
    BodyFormat::Raw
}

#[derive(Debug, Deserialize)]
struct UriArgs {
    url: String,
    dest: Option<String>,
    #[serde(alias = "user")]
    url_username: Option<String>,
    #[serde(alias = "password")]
    url_password: Option<String>,
    body: Option<Value>,
    #[serde(default = "raw")]
    body_format: BodyFormat,
    src: Option<String>,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    return_content: bool,
    #[serde(default = "safe")]
    follow_redirects: String,
    creates: Option<String>,
    removes: Option<String>,
    #[serde(default = "ok_200")]
    status_code: Vec<i64>,
    #[serde(default = "thirty")]
    timeout: u64,
    headers: Option<Map>,
    unix_socket: Option<String>,
    #[serde(default)]
    remote_src: bool,
    ca_path: Option<String>,
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
    #[allow(dead_code)]
    force: bool,
    #[serde(default = "agent")]
    http_agent: String,
    #[serde(default = "yes")]
    use_proxy: bool,
    #[serde(default = "yes")]
    validate_certs: bool,
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

impl Module for Uri {
    fn name(&self) -> &'static str {
        "uri"
    }
    fn supports_check(&self) -> bool {
        false
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<UriArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: UriArgs = args::parse("uri", args)?;
        let method = a.method.to_uppercase();
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Ok(Outcome::failed(
                "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
            ));
        }
        for (unsupported, given) in [
            ("use_gssapi", a.use_gssapi),
            ("unix_socket", a.unix_socket.is_some()),
            ("form-multipart", a.body_format == BodyFormat::FormMultipart),
            ("src without remote_src", a.src.is_some() && !a.remote_src),
        ] {
            if given {
                return Err(ModuleError::Args(format!(
                    "uri: {unsupported} is not supported by play"
                )));
            }
        }
        if a.body.is_some() && a.src.is_some() {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: body|src".into(),
            ));
        }
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let mut headers = header_pairs(a.headers.as_ref())?;
        let has_content_type = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        let body: Option<Vec<u8>> = match (&a.body, a.body_format) {
            (None, _) => None,
            (Some(body), BodyFormat::Json) => {
                if !has_content_type {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                Some(match body {
                    Value::String(s) => s.clone().into_bytes(),
                    other => python_json(other).into_bytes(),
                })
            }
            (Some(body), BodyFormat::FormUrlencoded) => {
                if !has_content_type {
                    headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                Some(match body {
                    Value::String(s) => s.clone().into_bytes(),
                    other => form_urlencoded(other)
                        .map_err(|e| {
                            ModuleError::Failed(format!(
                                "failed to parse body as form_urlencoded: {e}"
                            ))
                        })?
                        .into_bytes(),
                })
            }
            (Some(body), _) => Some(match body {
                Value::String(s) => s.clone().into_bytes(),
                other => crate::args::ansible_str(other)
                    .unwrap_or_else(|| python_json(other))
                    .into_bytes(),
            }),
        };
        let mut request = Request::get(&a.url);
        request.method = method.clone();
        request.headers = headers;
        request.username = a.url_username.clone().filter(|u| !u.is_empty());
        request.password = a.url_password.clone();
        request.force_basic_auth = a.force_basic_auth;
        request.validate_certs = a.validate_certs;
        request.timeout = a.timeout;
        request.follow = Follow::parse(&a.follow_redirects)?;
        request.use_netrc = a.use_netrc;
        request.use_proxy = a.use_proxy;
        request.decompress = a.decompress;
        request.http_agent = a.http_agent.clone();
        request.ciphers = a.ciphers.clone();
        request.client_cert = a.client_cert.clone();
        request.client_key = a.client_key.clone();
        request.has_body = body.is_some() || a.src.is_some();
        if let Err(msg) = request.validate() {
            return Ok(Outcome::failed(msg).with("elapsed", 0));
        }
        let mut curlrc = request.curl_config();
        if let Some(ca) = &a.ca_path {
            curlrc.push_str(&format!(
                "cacert = \"{}\"\n",
                ca.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }

        let mut stdin = Stdin::default();
        stdin.part("curlrc", curlrc.into_bytes());
        if let Some(body) = &body {
            stdin.rest("body", body.clone());
        }
        let codes: Vec<String> = a.status_code.iter().map(i64::to_string).collect();
        let mut s = Script::new()
            .raw(PRELUDE)
            .need("curl")
            .raw(FETCH)
            .raw(PLACE);
        if let Some(creates) = a.creates.as_deref() {
            s = s.set("c", creates).raw(
                "\n__tilde \"$c\"; if [ -e \"$__o\" ]; then __kv skip creates; __kv spath \"$__o\"; exit 0; fi\n",
            );
        }
        if let Some(removes) = a.removes.as_deref() {
            s = s.set("r", removes).raw(
                "\n__tilde \"$r\"; if [ ! -e \"$__o\" ]; then __kv skip removes; __kv spath \"$__o\"; exit 0; fi\n",
            );
        }
        s = s
            .raw(TEMP_DIR)
            .then(stdin.script())
            .set("codes", format!(" {} ", codes.join(" ")))
            .raw(";")
            .set("ret", if a.return_content { "1" } else { "" })
            .raw(";")
            .set("d", a.dest.as_deref().unwrap_or(""))
            .raw(";")
            .set("src", a.src.as_deref().unwrap_or(""))
            .raw(";")
            .set("m", chmod_mode(&want))
            .raw(";")
            .set("o", want.owner.as_deref().unwrap_or(""))
            .raw(";")
            .set("g", want.group.as_deref().unwrap_or(""))
            .raw(";")
            .set("u0", mask_url(&a.url))
            .raw(";")
            .set("meth", &method)
            .raw(URI);
        let cmd = Cmd::script(s);
        let cmd = if request.has_secret() {
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
        match r.get("skip") {
            Some("creates") => {
                return Ok(Outcome::ok().with(
                    "stdout",
                    format!(
                        "skipped, since '{}' exists",
                        r.get("spath").unwrap_or_default()
                    ),
                ))
            }
            Some(_) => {
                return Ok(Outcome::ok().with(
                    "stdout",
                    format!(
                        "skipped, since '{}' does not exist",
                        r.get("spath").unwrap_or_default()
                    ),
                ))
            }
            None => {}
        }
        if let Some(what) = r.get("fail") {
            let dest = r.get("path").unwrap_or_default();
            let msg = match what {
                "tmpdir" | "mktemp" => format!(
                    "Failed to create temporary content file: {}",
                    last_reason(&stderr)
                ),
                "src" => format!(
                    "Unable to open source file {}",
                    a.src.as_deref().unwrap_or("")
                ),
                "backup" => backup_failure_msg(dest, &r, &stderr),
                "mv" => format!("failed to copy to {dest}: {}", last_reason(&stderr)),
                other => attr_failure_msg(other, &want, &stderr),
            };
            return Ok(Outcome::failed(msg).with("elapsed", elapsed));
        }
        let resp = Response::from_records(&r, &a.url);
        Ok(self.result(&a, &resp, &r, elapsed))
    }
}

/// After the request (records of `__fetch`): the destination file, then the body.
/// Inputs: `codes` (" 200 201 "), `ret`, `d` dest, `src` (a request body on the target),
/// `m`/`o`/`g`, `u0`.
const URI: &str = r#"
if [ -n "$src" ]; then __tilde "$src"; __data=$__o; [ -r "$__data" ] || __fail src
elif [ -f "$T/body" ]; then __data=$T/body
else __data=; fi
__fetch "$T/out" "$T/hdr"
# curl -I writes the head where the body goes: a HEAD response has no body.
[ "$meth" != HEAD ] || : >"$T/out"
__code "$T/hdr"; code=$__o
__ok=; case $codes in *" $code "*) __ok=1;; esac
if [ -n "$d" ] && [ -n "$__ok" ] && [ "$code" != 304 ] && [ "$__frc" = 0 ]; then
  __tilde "$d"; d=$__o
  if [ -d "$d" ]; then
    __u=${__w#* }; __u=${__u#* }
    __respname "$T/hdr" "${__u:-$u0}"; d=$d/${__o:-index.html}
  fi
  __kv path "$d"
  case $d in */*) pd=${d%/*}; pd=${pd:-/};; *) pd=.;; esac
  __sumv sha1sum "$T/out"; csrc=$__o; cdest=
  if [ -e "$d" ]; then __sumv sha1sum "$d"; cdest=$__o; fi
  if [ "$csrc" != "$cdest" ] || [ ! -e "$d" ]; then
    tmp=$(umask 077; mktemp "$pd/.play-tmp-XXXXXXXX") || __fail mktemp
    trap 'rm -rf -- "$T"; rm -f -- "$tmp"' EXIT
    cp -- "$T/out" "$tmp" || __fail mv
    __place "$tmp" "$d"
  fi
  __attrs "$d"
  __kst fin "$d"
fi
__out=$ret; [ -n "$__ok" ] || __out=1
if [ -z "$__out" ]; then
  case $(awk '/^HTTP\//{v=""} { l=tolower($0) } l ~ /^content-type:/ {v=l} END{print v}' "$T/hdr") in
  *json*|*javascript*) __out=1;;
  esac
fi
if [ -n "$__out" ] && [ -f "$T/out" ]; then __rest body; cat "$T/out"; fi
"#;

impl Uri {
    fn result(&self, a: &UriArgs, resp: &Response, r: &Records, elapsed: u64) -> Outcome {
        let masked = mask_url(&a.url);
        let mut out = Outcome::ok();
        out = out
            .with("redirected", resp.redirected)
            .with("url", mask_url(&resp.url))
            .with("status", resp.status);
        let mut cookies = Map::new();
        let mut cookie_list = Vec::new();
        if resp.error.is_none() {
            for (name, value) in resp.merged_headers() {
                let key = name.replace('-', "_").to_lowercase();
                out.result.insert(key, Value::String(value));
            }
            for (name, value) in &resp.headers {
                if name == "set-cookie" {
                    let pair = value.split(';').next().unwrap_or_default();
                    if let Some((k, v)) = pair.split_once('=') {
                        cookies.insert(k.trim().to_string(), Value::from(v.trim()));
                        cookie_list.push(format!("{}={}", k.trim(), v.trim()));
                    }
                }
            }
            out = out
                .with("cookies_string", cookie_list.join("; "))
                .with("cookies", Value::Object(cookies));
            if let Some(location) = out.result.get("location").and_then(Value::as_str) {
                let joined = urljoin(&masked, location);
                out.result.insert("location".into(), Value::String(joined));
            }
        }
        out = out.with("elapsed", elapsed);
        if let Some(path) = r.get("path") {
            out = out.with("path", path);
            out.changed = r.get("moved").is_some() || r.get("attr").is_some();
            if let Some(st) = r.stat("fin").present() {
                let info = path_info(st);
                for key in ["uid", "gid", "owner", "group", "mode", "state", "size"] {
                    if let Some(v) = info.get(key) {
                        out.result.entry(key.to_string()).or_insert(v.clone());
                    }
                }
            }
        }
        let body = r.rest("body");
        let content_type = resp
            .header("content-type")
            .unwrap_or("application/octet-stream");
        let (mime, charset) = parse_content_type(content_type);
        let sub = mime.split('/').nth(1).unwrap_or("");
        let suffix = sub.rsplit('+').next().unwrap_or(sub);
        let maybe_json = ["json", "javascript"].contains(&suffix.to_ascii_lowercase().as_str());
        let content = body.map(|b| decode(b, &charset));
        if let (true, Some(text)) = (maybe_json, &content) {
            if let Ok(json) = serde_json::from_str::<Value>(text) {
                out.result.insert("json".into(), json);
            }
        }
        let ok = a.status_code.contains(&resp.status);
        let msg = resp.msg();
        if !ok {
            let codes: Vec<String> = a.status_code.iter().map(i64::to_string).collect();
            out.failed = true;
            out.msg = Some(format!(
                "Status code was {} and not [{}]: {msg}",
                resp.status,
                codes.join(", ")
            ));
        } else {
            out.msg = Some(msg);
        }
        if a.return_content {
            out.result.insert(
                "content".into(),
                content.map_or(Value::String(String::new()), Value::String),
            );
        }
        out
    }
}

/// The media type (lowercased) and charset of a Content-Type.
fn parse_content_type(value: &str) -> (String, String) {
    let mut parts = value.split(';');
    let mime = parts
        .next()
        .unwrap_or("")
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut charset = "utf-8".to_string();
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("charset") {
                charset = v.trim().trim_matches('"').to_ascii_lowercase();
            }
        }
    }
    let mime = if mime.contains('/') {
        mime
    } else {
        "application/octet-stream".into()
    };
    (mime, charset)
}

/// The body as text: Latin-1 when the response says so, else UTF-8 (lossy).
fn decode(bytes: &[u8], charset: &str) -> String {
    match charset {
        "iso-8859-1" | "latin-1" | "latin1" => bytes.iter().map(|b| char::from(*b)).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Python's `urljoin` for a `Location` header: absolute URLs as they are, `/path` on the
/// base's scheme and host, anything else beside the base's last path part.
fn urljoin(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let Some(scheme_end) = base.find("://") else {
        return location.to_string();
    };
    let after = &base[scheme_end + 3..];
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let origin = &base[..scheme_end + 3 + host_end];
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}//{rest}", &base[..scheme_end + 1]);
    }
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = super::url_path(base);
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{origin}{dir}{location}")
}

/// Python's `json.dumps(value)`: `", "` and `": "` separators, non-ASCII escaped.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&crate::pyfmt::float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_string(out, k);
                out.push_str(": ");
                write_json(out, v);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `urlencode(pairs, doseq=True)` of a dict or a list of pairs (`form_urlencoded`).
fn form_urlencoded(body: &Value) -> Result<String, String> {
    let pairs: Vec<(String, Value)> = match body {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(kv) if kv.len() == 2 => Ok((
                    crate::args::ansible_str(&kv[0]).unwrap_or_default(),
                    kv[1].clone(),
                )),
                _ => Err("cannot form-urlencode body, expect list or dict".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("cannot form-urlencode body, expect list or dict".into()),
    };
    let mut out = Vec::new();
    for (key, values) in pairs {
        let values = match values {
            Value::Array(items) => items,
            other => vec![other],
        };
        for value in values {
            if value.is_null() {
                continue;
            }
            let text = crate::args::ansible_str(&value).unwrap_or_else(|| python_json(&value));
            out.push(format!("{}={}", quote_plus(&key), quote_plus(&text)));
        }
    }
    Ok(out.join("&"))
}

/// Python's `quote_plus`: spaces as `+`, everything but `A-Za-z0-9_.-~` percent-encoded.
fn quote_plus(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_encoded_as_python_does() {
        assert_eq!(
            python_json(&json!({"a": [1, 2.5, true, null], "é": "x\"\n"})),
            r#"{"a": [1, 2.5, true, null], "\u00e9": "x\"\n"}"#
        );
        assert_eq!(
            form_urlencoded(&json!({"q": "a b&c", "n": [1, 2], "t": true})).expect("encodes"),
            "q=a+b%26c&n=1&n=2&t=True"
        );
        assert_eq!(
            form_urlencoded(&json!([["k", "v"]])).expect("encodes"),
            "k=v"
        );
    }

    #[test]
    fn locations_are_joined_like_urljoin() {
        assert_eq!(urljoin("http://h:1/a/b?x", "/c"), "http://h:1/c");
        assert_eq!(urljoin("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(urljoin("http://h/a", "https://o/x"), "https://o/x");
        assert_eq!(
            parse_content_type("Application/JSON; charset=\"UTF-8\""),
            ("application/json".to_string(), "utf-8".to_string())
        );
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;
    use testbed::HttpServer;

    fn run(args: Value) -> Map {
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let Value::Object(map) = args else {
            panic!("object")
        };
        match Uri.run(&mut ctx, &map) {
            Ok(o) => o.to_result(),
            Err(e) => {
                let mut m = Map::new();
                m.insert("error".into(), Value::String(e.to_string()));
                m
            }
        }
    }

    #[test]
    fn get_json_and_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("server");
        let r = run(json!({"url": server.url("/json")}));
        assert_eq!(r["changed"], false);
        assert_eq!(r.get("failed"), None, "{r:?}");
        assert_eq!(r["status"], 200);
        assert_eq!(
            r["json"],
            json!({"name": "play", "items": [1, 2, 3], "nested": {"ok": true}})
        );
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(
            r["content_length"],
            testbed::HTTP_JSON_BODY.len().to_string()
        );
        assert_eq!(
            r["msg"],
            format!("OK ({} bytes)", testbed::HTTP_JSON_BODY.len())
        );
        assert_eq!(r["url"], server.url("/json"));
        assert_eq!(r["redirected"], false);
        assert_eq!(r["cookies"], json!({}));
        assert_eq!(r.get("content"), None);

        let r = run(json!({"url": server.url("/redirect/2"), "return_content": true}));
        assert_eq!(r["redirected"], true, "{r:?}");
        assert_eq!(r["url"], server.url("/json"));
        assert_eq!(r["content"], testbed::HTTP_JSON_BODY);
    }

    #[test]
    fn post_bodies_arrive_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("server");
        let hostile = "quote \" apostrophe ' $(id) `id`\nnew line\ttab \\ backslash é";
        let r = run(json!({
            "url": server.url("/echo"), "method": "POST", "body_format": "json",
            "body": {"text": hostile, "n": [1, 2]}, "headers": {"X-Hostile": "a 'b' \"c\" $(d)"},
        }));
        assert_eq!(r.get("failed"), None, "{r:?}");
        let echoed = &r["json"];
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["headers"]["content-type"], "application/json");
        assert_eq!(echoed["headers"]["x-hostile"], "a 'b' \"c\" $(d)");
        let sent: Value =
            serde_json::from_str(echoed["body"].as_str().expect("body")).expect("json");
        assert_eq!(sent, json!({"text": hostile, "n": [1, 2]}));
        let raw = &server.requests_to("/echo")[0];
        assert_eq!(
            raw.body,
            python_json(&json!({"text": hostile, "n": [1, 2]})).into_bytes()
        );

        let r = run(json!({
            "url": server.url("/echo"), "method": "put", "body_format": "form-urlencoded",
            "body": {"a": "x y&z", "b": ["1", "2"]}, "status_code": "200,201",
        }));
        assert_eq!(r["json"]["method"], "PUT", "{r:?}");
        assert_eq!(r["json"]["body"], "a=x+y%26z&b=1&b=2");
        assert_eq!(
            r["json"]["headers"]["content-type"],
            "application/x-www-form-urlencoded"
        );
        // A raw body with a NUL-free binary-ish payload and no trailing newline.
        let r = run(json!({"url": server.url("/json"), "method": "HEAD", "return_content": true}));
        assert_eq!(
            (r["status"].clone(), r["content"].clone()),
            (json!(200), json!("")),
            "{r:?}"
        );
        let r = run(json!({"url": server.url("/echo"), "method": "POST", "body": "line1\nline2"}));
        assert_eq!(r["json"]["body"], "line1\nline2");
    }

    #[test]
    fn statuses_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("server");
        let r = run(json!({"url": server.url("/status/404")}));
        assert_eq!(r["failed"], true);
        assert_eq!(r["status"], 404);
        assert_eq!(
            r["msg"],
            "Status code was 404 and not [200]: HTTP Error 404: Not Found"
        );
        let r = run(
            json!({"url": server.url("/status/404"), "status_code": [200, 404], "return_content": true}),
        );
        assert_eq!(r.get("failed"), None, "{r:?}");
        assert_eq!(r["content"], "Not Found");
        assert_eq!(r["msg"], "HTTP Error 404: Not Found");
        let r = run(json!({"url": server.url("/redirect/1"), "follow_redirects": "none"}));
        assert_eq!(
            r["msg"],
            "Status code was 302 and not [200]: HTTP Error 302: Found"
        );
        assert_eq!(r["location"], server.url("/json"));
        let r = run(json!({"url": server.url("/redirect/1"), "method": "POST", "body": "x"}));
        assert_eq!(
            r["status"], 302,
            "safe redirects are only followed for GET: {r:?}"
        );
        let r = run(json!({"url": "http://127.0.0.1:1/"}));
        assert_eq!(
            r["msg"],
            "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>"
        );
        assert_eq!(r["status"], -1);
        let r = run(json!({"url": server.url("/json"), "body_format": "xml"}));
        assert_eq!(
            r["error"],
            "value of body_format must be one of: form-urlencoded, json, raw, form-multipart, got: xml"
        );
        let r = run(json!({"url": server.url("/json"), "method": "GET POST"}));
        assert_eq!(
            r["msg"],
            "Parameter 'method' needs to be a single word in uppercase, like GET or POST."
        );
        let r = run(
            json!({"url": server.url("/basic-auth/u/p w"), "url_username": "u", "url_password": "p w"}),
        );
        assert_eq!(
            r["msg"],
            "URL can't contain control characters. '/basic-auth/u/p w' (found at least ' ')"
        );
        let r = run(
            json!({"url": server.url("/basic-auth/u/pw"), "url_username": "u", "url_password": "pw"}),
        );
        assert_eq!(r["json"]["authenticated"], true, "{r:?}");
        assert_eq!(
            server.requests_to("/basic-auth/u/pw").len(),
            2,
            "challenge, then credentials"
        );
        let r = run(
            json!({"url": server.url("/basic-auth/u/pw"), "url_username": "u", "url_password": "pw", "force_basic_auth": true}),
        );
        assert_eq!(r["status"], 200);
        assert_eq!(
            server.requests_to("/basic-auth/u/pw").len(),
            3,
            "credentials at once"
        );
    }

    #[test]
    fn creates_removes_and_dest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = HttpServer::start(dir.path()).expect("server");
        let out = tempfile::tempdir().expect("tempdir");
        let d = out.path().to_str().expect("utf-8");
        let r = run(json!({"url": server.url("/json"), "creates": d}));
        assert_eq!(r["stdout"], format!("skipped, since '{d}' exists"));
        assert!(server.requests().is_empty());
        let r = run(json!({"url": server.url("/json"), "removes": format!("{d}/nope")}));
        assert_eq!(
            r["stdout"],
            format!("skipped, since '{d}/nope' does not exist")
        );
        let dest = format!("{d}/saved 'it'.json");
        let r = run(json!({"url": server.url("/json"), "dest": dest, "mode": "0600"}));
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["path"], dest);
        assert_eq!(r["mode"], "0600");
        assert_eq!(
            std::fs::read_to_string(&dest).expect("read"),
            testbed::HTTP_JSON_BODY
        );
        let r = run(json!({"url": server.url("/json"), "dest": dest, "mode": "0600"}));
        assert_eq!(r["changed"], false, "{r:?}");
        let r = run(json!({"url": server.url("/json"), "dest": d}));
        assert_eq!(r["path"], format!("{d}/json"));
    }
}
