//! Modules that reach the network from the target (git, get_url, uri, unarchive), and the
//! HTTP client they share: curl on the target, or GNU wget where there is no curl.
//!
//! # The request travels on stdin
//! Everything about a request (URL, headers, credentials, TLS and redirect settings) goes
//! into a curl config file (`curl -K`) and a wgetrc (`wget --config`), written by the
//! script from its stdin into a 0700 temporary directory: a password or an `Authorization`
//! header is never in an argv (`ps` shows those) nor in the script's text (the local
//! connection passes that as an argument of `sh -c`). [`Stdin`] lays the parts out one
//! after the other and [`Stdin::script`] reads each into its file with `dd bs=1 count=N`
//! (a pipe must not be read past a part's end), the last part, a request body, with `cat`.
//!
//! # What comes back
//! [`FETCH`] defines the shell function `__fetch OUT HDRS` that runs the request and records
//! (as `files::common` records) the tool, its exit status, its stderr and the response
//! headers; [`Response::from_records`] reads them: status, reason, headers of the last
//! response (after redirects), effective URL. [`Response::msg`] is urllib's wording, which
//! Ansible reports: `OK (N bytes)`, `HTTP Error 404: Not Found`, `Request failed: <urlopen
//! error [Errno 111] Connection refused>`.
//!
//! wget only serves `GET` and `HEAD` (get_url, unarchive of a URL); `uri` needs curl.

pub mod get_url;
pub mod git;
pub mod unarchive;
pub mod uri;

use crate::files::common::Records;
use crate::{Map, ModuleError, Script, Value};

/// The user agent Ansible's URL modules send.
pub const ANSIBLE_AGENT: &str = "ansible-httpget";

/// Which redirects to follow (Ansible's `follow_redirects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// None: a 3xx is the response.
    No,
    /// Only for GET and HEAD (`safe`, the default of `uri`).
    Safe,
    /// Every method (`all`, `yes`, `urllib2`; get_url always).
    All,
}

impl Follow {
    /// `follow_redirects` as Ansible reads it.
    pub fn parse(value: &str) -> Result<Follow, ModuleError> {
        match value {
            "no" | "none" => Ok(Follow::No),
            "safe" => Ok(Follow::Safe),
            "all" | "yes" | "urllib2" => Ok(Follow::All),
            other => Err(ModuleError::Args(format!(
                "value of follow_redirects must be one of: all, no, none, safe, urllib2, yes, got: {other}"
            ))),
        }
    }
}

/// One HTTP request, as the URL modules describe it.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    /// Uppercase method; `GET` and `HEAD` are the only ones wget can send.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Send the credentials with the first request instead of after a 401 challenge.
    pub force_basic_auth: bool,
    pub validate_certs: bool,
    /// Seconds for connecting and for any stall while transferring (Ansible's socket timeout).
    pub timeout: u64,
    pub follow: Follow,
    pub use_netrc: bool,
    pub use_proxy: bool,
    pub decompress: bool,
    pub http_agent: String,
    pub ciphers: Vec<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// The script passes a request body file (`$__data`).
    pub has_body: bool,
}

impl Request {
    pub fn get(url: &str) -> Request {
        Request {
            url: url.to_string(),
            method: "GET".into(),
            headers: Vec::new(),
            username: None,
            password: None,
            force_basic_auth: false,
            validate_certs: true,
            timeout: 10,
            follow: Follow::All,
            use_netrc: true,
            use_proxy: true,
            decompress: true,
            http_agent: ANSIBLE_AGENT.into(),
            ciphers: Vec::new(),
            client_cert: None,
            client_key: None,
            has_body: false,
        }
    }

    /// Refuse what urllib refuses before sending anything: header names or values that
    /// would split the request.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in &self.headers {
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c == ':' || c.is_control())
            {
                return Err(format!("Invalid header name {}", py_bytes_repr(name)));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(format!("Invalid header value {}", py_bytes_repr(value)));
            }
        }
        // http.client's check of the request line's target.
        let selector = match self.url.find("://") {
            Some(i) => {
                let after = &self.url[i + 3..];
                after.find(['/', '?']).map_or("", |j| &after[j..])
            }
            None => self.url.as_str(),
        };
        if let Some(bad) = selector.chars().find(|c| *c <= ' ' || *c == '\x7f') {
            return Err(format!(
                "URL can't contain control characters. {} (found at least {})",
                crate::pyfmt::str_repr(selector),
                crate::pyfmt::str_repr(&bad.to_string())
            ));
        }
        Ok(())
    }

    fn follows(&self) -> bool {
        match self.follow {
            Follow::No => false,
            Follow::Safe => matches!(self.method.as_str(), "GET" | "HEAD"),
            Follow::All => true,
        }
    }

    /// The curl config file (`curl -q -K FILE`) for this request.
    pub fn curl_config(&self) -> String {
        let mut c = String::new();
        let mut line = |key: &str, value: Option<&str>| {
            c.push_str(key);
            if let Some(v) = value {
                c.push_str(" = ");
                c.push_str(&curl_quote(v));
            }
            c.push('\n');
        };
        line("url", Some(&self.url));
        line("user-agent", Some(&self.http_agent));
        // urllib speaks HTTP/1.1 only: reason phrases and header casing stay as it sees them.
        line("http1.1", None);
        for (name, value) in &self.headers {
            line("header", Some(&format!("{name}: {value}")));
        }
        match self.method.as_str() {
            "HEAD" => line("head", None),
            "GET" if !self.has_body => {}
            "POST" if self.has_body => {}
            other => line("request", Some(other)),
        }
        if let Some(user) = &self.username {
            let password = self.password.as_deref().unwrap_or("");
            line("user", Some(&format!("{user}:{password}")));
            // urllib answers a 401 challenge unless asked to send the credentials at once.
            line(
                if self.force_basic_auth {
                    "basic"
                } else {
                    "anyauth"
                },
                None,
            );
        } else if self.use_netrc {
            line("netrc-optional", None);
        }
        if !self.validate_certs {
            line("insecure", None);
        }
        if !self.use_proxy {
            line("noproxy", Some("*"));
        }
        if self.decompress {
            line("compressed", None);
        }
        if !self.ciphers.is_empty() {
            line("ciphers", Some(&self.ciphers.join(":")));
        }
        if let Some(cert) = &self.client_cert {
            line("cert", Some(cert));
        }
        if let Some(key) = &self.client_key {
            line("key", Some(key));
        }
        let timeout = self.timeout.max(1).to_string();
        line("connect-timeout", Some(&timeout));
        // A transfer stalled (under 1 byte/s) for `timeout` seconds ends like a socket timeout.
        line("speed-time", Some(&timeout));
        line("speed-limit", Some("1"));
        if self.follows() {
            line("location", None);
            line("max-redirs", Some("10"));
        }
        c
    }

    /// The wgetrc (`wget --config=FILE`) for a GET or HEAD of this request.
    pub fn wgetrc(&self) -> String {
        let mut c = String::new();
        let mut line = |key: &str, value: &str| {
            c.push_str(key);
            c.push_str(" = ");
            c.push_str(value);
            c.push('\n');
        };
        line("user_agent", &self.http_agent);
        for (name, value) in &self.headers {
            line("header", &format!("{name}: {value}"));
        }
        if let Some(user) = &self.username {
            line("http_user", user);
            line("http_password", self.password.as_deref().unwrap_or(""));
            if self.force_basic_auth {
                line("auth_no_challenge", "on");
            }
        }
        if !self.validate_certs {
            line("check_certificate", "off");
        }
        if !self.use_proxy {
            line("use_proxy", "off");
        }
        if let Some(cert) = &self.client_cert {
            line("certificate", cert);
        }
        if let Some(key) = &self.client_key {
            line("private_key", key);
        }
        line("timeout", &self.timeout.max(1).to_string());
        line("tries", "1");
        line("max_redirect", if self.follows() { "10" } else { "0" });
        c
    }

    /// Whether the request needs a secret kept off the screen (`Cmd::secret_stdin`).
    pub fn has_secret(&self) -> bool {
        self.password.is_some()
            || self.url.contains('@')
            || self.headers.iter().any(|(n, _)| {
                n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("cookie")
            })
    }

    /// The stdin parts `__fetch` reads: curl config, wgetrc, wget's URL list.
    pub fn stdin_parts(&self, stdin: &mut Stdin) {
        stdin.part("curlrc", self.curl_config().into_bytes());
        stdin.part("wgetrc", self.wgetrc().into_bytes());
        stdin.part("wurl", format!("{}\n", self.url).into_bytes());
    }
}

/// A value in a curl config file: double-quoted, with curl's escapes.
fn curl_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Python's `repr()` of a str encoded to bytes (`b'...'`), for urllib's messages.
fn py_bytes_repr(text: &str) -> String {
    format!("b{}", crate::pyfmt::str_repr(text))
}

/// Files a script reads from its stdin into `$T` (see the module docs).
#[derive(Debug, Default)]
pub struct Stdin {
    parts: Vec<(&'static str, Vec<u8>)>,
    rest: Option<(&'static str, Vec<u8>)>,
}

impl Stdin {
    pub fn part(&mut self, file: &'static str, data: Vec<u8>) {
        self.parts.push((file, data));
    }
    /// The last part, read with `cat` (any size).
    pub fn rest(&mut self, file: &'static str, data: Vec<u8>) {
        self.rest = Some((file, data));
    }
    /// Shell reading each part into `$T/<file>`, in order. `$T` must be set.
    pub fn script(&self) -> Script {
        let mut s = Script::new();
        for (file, data) in &self.parts {
            s = s
                .set("__f", file)
                .raw(";")
                .set("__n", data.len().to_string())
                .raw("; dd bs=1 count=\"$__n\" of=\"$T/$__f\" 2>/dev/null || exit 1\n");
        }
        if let Some((file, _)) = &self.rest {
            s = s.set("__f", file).raw("; cat >\"$T/$__f\" || exit 1\n");
        }
        s
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, data) in &self.parts {
            out.extend_from_slice(data);
        }
        if let Some((_, data)) = &self.rest {
            out.extend_from_slice(data);
        }
        out
    }
}

/// Start of a script that uses `$T`: a private temporary directory, removed on exit.
pub const TEMP_DIR: &str = "T=$(umask 077; mktemp -d \"${TMPDIR:-/tmp}/.play-net-XXXXXXXX\") || { __kv fail tmpdir; exit 1; }\n\
trap 'rm -rf -- \"$T\"' EXIT\n";

/// `__fetch OUT HDRS`: run the request in `$T/curlrc` (curl) or `$T/wgetrc` + `$T/wurl`
/// (wget), the body into OUT, the response headers into HDRS; a request body comes from
/// the file named by `$__data` when set. Records: `tool`, `frc` (exit status), `fw` (curl's
/// `http_code num_redirects url_effective`), `ferr` (stderr), `hdr` (the raw headers).
/// Needs `files::common::PRELUDE`.
pub const FETCH: &str = r#"__fetch() {
  if command -v curl >/dev/null 2>&1; then
    __kv tool curl
    if [ -n "${__data:-}" ]; then
      __w=$(curl -q -K "$T/curlrc" -sS -o "$1" -D "$2" --data-binary "@$__data" -w '%{http_code} %{num_redirects} %{url_effective}' 2>"$T/ferr")
    else
      __w=$(curl -q -K "$T/curlrc" -sS -o "$1" -D "$2" -w '%{http_code} %{num_redirects} %{url_effective}' 2>"$T/ferr")
    fi
    __frc=$?
  else
    __kv tool wget
    : >"$T/ferr"
    if [ -n "${__head:-}" ]; then
      wget --config="$T/wgetrc" -nv -S --spider -i "$T/wurl" 2>"$2"
    else
      wget --config="$T/wgetrc" -nv -S -O "$1" -i "$T/wurl" 2>"$2"
    fi
    __frc=$?
    __w=
  fi
  __kv frc "$__frc"; __kv fw "$__w"; __kvc ferr cat "$T/ferr"; __kvc hdr cat "$2"
}
"#;

/// Shell functions for placing a downloaded file (needs `files::common::PRELUDE`):
/// - `__code HDRS`: `__o` = the HTTP status `__fetch` got (curl's, or the last of wget's heads).
/// - `__respname HDRS URL`: `__o` = the file name a response names (Content-Disposition's
///   `filename`, else the last part of the URL's path; empty when there is none).
/// - `__place TMP DEST`: rename TMP (beside DEST) over DEST as Ansible's `atomic_move` does:
///   an existing DEST's mode and owner are kept, a new file gets 0666 & ~umask; `__backup`
///   first when `$backup` is set. Records `moved=1`.
/// - `__attrs PATH`: `$o`, `$g`, `$m` (owner, group, chmod mode) applied to PATH; records
///   `attr=1` when that changed anything.
pub const PLACE: &str = r#"__code() { if [ -n "${__w:-}" ]; then __o=${__w%% *}; else __o=$(awk '/^  HTTP\//{c=$2} END{print c}' "$1"); fi; }
__respname() {
  __o=$(awk '/^ *HTTP\//{v=""} { l=tolower($0) } l ~ /^ *content-disposition:/ {v=$0} END{print v}' "$1" | tr -d '\r' | sed -n 's/.*[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]= *"\{0,1\}\([^";]*\).*/\1/p')
  __o=${__o##*/}
  if [ -z "$__o" ]; then
    __u=${2%%#*}; __u=${__u%%\?*}; __u=${__u#*://}
    case $__u in */*) __u=/${__u#*/};; *) __u=;; esac
    __o=${__u##*/}
  fi
}
__place() {
  if [ -e "$2" ]; then
    chmod "$(stat -L -c %a -- "$2")" "$1" || __fail chmod
    chown "$(stat -L -c %u:%g -- "$2")" "$1" 2>/dev/null
    if [ -n "${backup:-}" ]; then __backup "$2" || __fail backup; fi
  else
    chmod "$(printf %o $((0666 & ~$(umask))))" "$1" || __fail chmod
  fi
  mv -f -- "$1" "$2" || __fail mv
  __kv moved 1
}
__attrs() {
  __a=$(stat -c '%a %u %g' -- "$1")
  if [ -n "${o:-}" ]; then chown -- "$o" "$1" || __fail chown; fi
  if [ -n "${g:-}" ]; then chgrp -- "$g" "$1" || __fail chgrp; fi
  if [ -n "${m:-}" ]; then chmod -- "$m" "$1" || __fail chmod; fi
  [ "$__a" = "$(stat -c '%a %u %g' -- "$1")" ] || __kv attr 1
}
"#;

/// The `mode` argument as `chmod` takes it (octal digits or the symbolic expression).
pub fn chmod_mode(want: &crate::files::common::WantAttrs) -> String {
    match &want.mode {
        Some(crate::files::common::ModeSpec::Bits(bits)) => format!("{bits:o}"),
        Some(crate::files::common::ModeSpec::Symbolic(s)) => s.clone(),
        None => String::new(),
    }
}

/// The guard for `__fetch`: curl, or else wget; the message names curl when neither is there.
pub fn need_fetcher(s: Script) -> Script {
    s.raw("if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then\n")
        .need("curl")
        .raw("fi\n")
}

/// What came back from `__fetch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status; -1 when there was no response (connection refused, timeout, ...).
    pub status: i64,
    pub reason: String,
    /// Headers of the last response, names lowercased, in order (repeated names repeated).
    pub headers: Vec<(String, String)>,
    /// Where the last response came from (after redirects).
    pub url: String,
    pub redirected: bool,
    /// urllib's message for a request that got no response.
    pub error: Option<String>,
}

impl Response {
    /// Read `__fetch`'s records. `url` is the requested URL (wget does not say where
    /// redirects led).
    pub fn from_records(r: &Records, url: &str) -> Response {
        let tool = r.get("tool").unwrap_or("curl");
        let rc: i32 = r.get("frc").and_then(|v| v.parse().ok()).unwrap_or(-1);
        let stderr = r.get("ferr").unwrap_or_default();
        let hdr = r.get("hdr").unwrap_or_default();
        let mut resp = Response {
            status: -1,
            url: url.to_string(),
            ..Response::default()
        };
        let blocks = if tool == "wget" {
            wget_blocks(hdr)
        } else {
            header_blocks(hdr)
        };
        // Interim responses (100 Continue) are not the answer.
        if let Some(last) = blocks
            .iter()
            .rev()
            .find(|b| !(100..200).contains(&b.status))
        {
            resp.status = last.status;
            resp.reason = last.reason.clone();
            resp.headers = last.headers.clone();
        }
        if tool == "curl" {
            let fw = r.get("fw").unwrap_or_default();
            let mut parts = fw.splitn(3, ' ');
            let code: i64 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let redirects: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            if let Some(effective) = parts.next().filter(|u| !u.is_empty()) {
                resp.url = effective.to_string();
            }
            resp.redirected = redirects > 0;
            if code > 0 && resp.status < 0 {
                resp.status = code;
            }
        } else {
            let finals = blocks.iter().filter(|b| !(100..200).contains(&b.status));
            resp.redirected = finals.count() > 1;
        }
        if rc == 0 && resp.status <= 0 && url.starts_with("file:") {
            // urllib's file handler: no status line, the file read.
            resp.status = 200;
        }
        if resp.status < 0 || (tool == "curl" && rc != 0 && rc != 22) {
            // No complete response: the transfer itself failed.
            resp.status = -1;
            resp.error = Some(transfer_error(tool, rc, stderr));
        }
        if resp.reason.is_empty() && resp.status > 0 {
            resp.reason = reason_phrase(resp.status).to_string();
        }
        resp
    }

    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether urllib would have raised HTTPError (anything but 2xx once redirects are done).
    pub fn is_http_error(&self) -> bool {
        self.error.is_none() && !(200..300).contains(&self.status)
    }

    /// Ansible's `msg` for this response.
    pub fn msg(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        if self.is_http_error() {
            return format!("HTTP Error {}: {}", self.status, self.reason);
        }
        format!(
            "OK ({} bytes)",
            self.header("content-length").unwrap_or("unknown")
        )
    }

    /// The headers as Ansible's `uri` result carries them: repeated names joined with ", ".
    pub fn merged_headers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.headers {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => out.push((name.clone(), value.clone())),
            }
        }
        out
    }

    /// `Content-Disposition`'s filename, as Python's email parser reads it, without directories.
    pub fn disposition_filename(&self) -> Option<String> {
        let cd = self.header("content-disposition")?;
        for param in split_params(cd).into_iter().skip(1) {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("filename") {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .map(|x| x.replace("\\\"", "\"").replace("\\\\", "\\"))
                        .unwrap_or_else(|| v.to_string());
                    let base = v.rsplit('/').next().unwrap_or("").to_string();
                    return (!base.is_empty()).then_some(base);
                }
            }
        }
        None
    }
}

/// `a; b="x;y"; c` split at semicolons outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    status: i64,
    reason: String,
    headers: Vec<(String, String)>,
}

/// The response heads curl's `-D` wrote (one per redirect and interim response).
fn header_blocks(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(status_line) = line.strip_prefix("HTTP/") {
            let mut parts = status_line.splitn(3, ' ');
            let _version = parts.next();
            let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
            let reason = parts.next().unwrap_or("").trim().to_string();
            blocks.push(Block {
                status,
                reason,
                headers: Vec::new(),
            });
        } else if let (Some(block), Some((name, value))) = (blocks.last_mut(), line.split_once(':'))
        {
            block
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    blocks
}

/// The response heads `wget -S` printed (indented by two spaces) among its other messages.
fn wget_blocks(text: &str) -> Vec<Block> {
    let heads: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    header_blocks(&heads)
}

/// urllib's message for a request that got no response, from the tool's exit status and
/// its message.
fn transfer_error(tool: &str, rc: i32, stderr: &str) -> String {
    let detail = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let text = detail
        .strip_prefix("curl: (")
        .and_then(|rest| rest.split_once(") "))
        .map_or(detail, |(_, msg)| msg);
    let lower = stderr.to_ascii_lowercase();
    let refused = (tool == "curl" && rc == 7 && lower.contains("couldn't connect"))
        || lower.contains("refused");
    if refused {
        return "Request failed: <urlopen error [Errno 111] Connection refused>".into();
    }
    if (tool == "curl" && rc == 6)
        || lower.contains("could not resolve")
        || lower.contains("unable to resolve")
        || lower.contains("name or service not known")
    {
        return "Request failed: <urlopen error [Errno -2] Name or service not known>".into();
    }
    if (tool == "curl" && rc == 28) || lower.contains("timed out") {
        return "Request failed: <urlopen error timed out>".into();
    }
    if (tool == "curl" && matches!(rc, 35 | 51 | 58 | 60 | 77 | 83 | 90 | 91))
        || (tool == "wget" && rc == 5)
    {
        return format!(
            "Request failed: <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {text}>"
        );
    }
    if text.is_empty() {
        format!("Request failed: <urlopen error {tool} exited with status {rc}>")
    } else {
        format!("Request failed: <urlopen error {text}>")
    }
}

/// Python's `http.HTTPStatus` phrases (for responses without one, as HTTP/2 sends them).
pub fn reason_phrase(status: i64) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a Teapot",
        422 => "Unprocessable Entity",
        423 => "Locked",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Python's `urlsplit(url).path`: the part after the authority, before `?` and `#`.
pub fn url_path(url: &str) -> &str {
    let no_fragment = url.split('#').next().unwrap_or(url);
    let no_query = no_fragment.split('?').next().unwrap_or(no_fragment);
    match no_query.find("://") {
        Some(i) => {
            let after = &no_query[i + 3..];
            after.find('/').map_or("", |j| &after[j..])
        }
        None => no_query,
    }
}

/// Ansible's `mask_url`: the password (or a lone user name) of a URL as `****`.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let masked = if userinfo.contains(':') {
        "****:****"
    } else {
        "****"
    };
    format!(
        "{}{masked}{}",
        &url[..scheme_end + 3],
        &url[scheme_end + 3 + at..]
    )
}

/// Python's `urllib.parse.unquote` (UTF-8, invalid sequences replaced).
pub fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            let parsed = u8::from_str_radix(hex, 16).ok();
            if let (true, Some(b)) = (hex.bytes().all(|b| b.is_ascii_hexdigit()), parsed) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `headers` argument (dict) as name/value pairs, values rendered as Ansible's `str`.
pub fn header_pairs(headers: Option<&Map>) -> Result<Vec<(String, String)>, ModuleError> {
    let mut out = Vec::new();
    for (name, value) in headers.into_iter().flatten() {
        let value = match value {
            Value::Null => continue,
            other => crate::args::ansible_str(other).unwrap_or_else(|| other.to_string()),
        };
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// Seconds elapsed, as Ansible's `(end - start).seconds`.
pub fn elapsed_secs(start: std::time::Instant) -> u64 {
    start.elapsed().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(pairs: &[(&str, &str)]) -> Records {
        let mut bytes = Vec::new();
        for (k, v) in pairs {
            bytes.extend_from_slice(format!("{k}={v}\0").as_bytes());
        }
        Records::parse(&bytes)
    }

    #[test]
    fn curl_configs_quote_everything_and_keep_secrets_out_of_argv() {
        let mut req = Request::get("http://h/x?a=\"b\"");
        req.headers = vec![("X-Q".into(), "say \"hi\" \\ $(x)".into())];
        req.username = Some("us er".into());
        req.password = Some("p\"w".into());
        req.method = "PUT".into();
        req.has_body = true;
        req.follow = Follow::Safe;
        let c = req.curl_config();
        assert!(c.contains("url = \"http://h/x?a=\\\"b\\\"\"\n"), "{c}");
        assert!(
            c.contains("header = \"X-Q: say \\\"hi\\\" \\\\ $(x)\"\n"),
            "{c}"
        );
        assert!(c.contains("user = \"us er:p\\\"w\"\nanyauth\n"), "{c}");
        assert!(c.contains("request = \"PUT\"\n"), "{c}");
        assert!(
            !c.contains("location"),
            "PUT is not followed when safe: {c}"
        );
        assert!(req.has_secret());
        req.method = "POST".into();
        req.force_basic_auth = true;
        let c = req.curl_config();
        assert!(!c.contains("request"), "{c}");
        assert!(c.contains("basic\n"), "{c}");
        let w = req.wgetrc();
        assert!(w.contains("http_password = p\"w\n"), "{w}");
        assert!(w.contains("auth_no_challenge = on\n"), "{w}");
        req.headers = vec![("X".into(), "a\nb".into())];
        assert_eq!(
            req.validate().expect_err("refused"),
            "Invalid header value b'a\\nb'"
        );
    }

    #[test]
    fn stdin_parts_are_read_exactly() {
        let mut host = crate::local::LocalHost::new("localhost");
        let mut stdin = Stdin::default();
        stdin.part("one", b"first\npart".to_vec());
        stdin.part("two", Vec::new());
        stdin.rest("three", b"the 'rest' $(x)\n".to_vec());
        let script = Script::new()
            .raw(crate::files::common::PRELUDE)
            .raw(TEMP_DIR)
            .then(stdin.script())
            .raw("cat \"$T/one\"; echo '|'; cat \"$T/two\"; echo '|'; cat \"$T/three\"");
        let out = crate::Host::exec(&mut host, &crate::Cmd::script(script).stdin(stdin.bytes()))
            .expect("runs");
        assert_eq!(out.stdout_str(), "first\npart|\n|\nthe 'rest' $(x)\n");
    }

    #[test]
    fn responses_are_read_from_the_last_head() {
        let hdr = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: /b\r\n\r\nHTTP/1.1 404 File not found\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
        let r = records(&[
            ("tool", "curl"),
            ("frc", "0"),
            ("fw", "404 1 http://h/b"),
            ("ferr", ""),
            ("hdr", hdr),
        ]);
        let resp = Response::from_records(&r, "http://h/a");
        assert_eq!(resp.status, 404);
        assert_eq!(resp.url, "http://h/b");
        assert!(resp.redirected);
        assert_eq!(resp.msg(), "HTTP Error 404: File not found");
        assert_eq!(
            resp.merged_headers(),
            vec![
                ("content-type".to_string(), "text/html".to_string()),
                ("set-cookie".to_string(), "a=1, b=2".to_string())
            ]
        );

        let r = records(&[
            ("tool", "curl"),
            ("frc", "7"),
            ("fw", "000 0 http://127.0.0.1:1/"),
            ("ferr", "curl: (7) Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server\n"),
            ("hdr", ""),
        ]);
        let resp = Response::from_records(&r, "http://127.0.0.1:1/");
        assert_eq!(resp.status, -1);
        assert_eq!(
            resp.msg(),
            "Request failed: <urlopen error [Errno 111] Connection refused>"
        );

        let wget = "  HTTP/1.1 200 OK\n  Content-Length: 6\n2024-01-01 URL:http://h/x [6/6] -> \"x\" [1]\n";
        let r = records(&[("tool", "wget"), ("frc", "0"), ("hdr", wget)]);
        let resp = Response::from_records(&r, "http://h/x");
        assert_eq!((resp.status, resp.msg()), (200, "OK (6 bytes)".to_string()));
        let r = records(&[
            ("tool", "wget"),
            ("frc", "8"),
            ("hdr", "  HTTP/1.1 404 Not Found\n"),
        ]);
        assert_eq!(
            Response::from_records(&r, "u").msg(),
            "HTTP Error 404: Not Found"
        );
    }

    #[test]
    fn urls_are_split_masked_and_unquoted_like_python() {
        assert_eq!(url_path("http://h:1/a/b.tgz?x=1#f"), "/a/b.tgz");
        assert_eq!(url_path("http://h"), "");
        assert_eq!(mask_url("https://u:p@h/x"), "https://****:****@h/x");
        assert_eq!(mask_url("https://u@h/x"), "https://****@h/x");
        assert_eq!(mask_url("https://h/x@y"), "https://h/x@y");
        assert_eq!(unquote("a%20b%zz%"), "a b%zz%");
        let resp = Response {
            headers: vec![(
                "content-disposition".into(),
                "attachment; filename=\"../a;b.txt\"".into(),
            )],
            ..Response::default()
        };
        assert_eq!(resp.disposition_filename().as_deref(), Some("a;b.txt"));
    }
}

/// A `LocalHost` whose commands see a PATH without some tools, for the fallbacks.
#[cfg(test)]
pub(crate) struct WithoutTools {
    inner: crate::local::LocalHost,
    bin: tempfile::TempDir,
}

#[cfg(test)]
impl WithoutTools {
    pub(crate) fn new(hidden: &[&str]) -> WithoutTools {
        let bin = tempfile::tempdir().expect("tempdir");
        for dir in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name();
                let link = bin.path().join(&name);
                if hidden.iter().any(|h| name.to_str() == Some(h)) || link.exists() {
                    continue;
                }
                let _ = std::os::unix::fs::symlink(e.path(), link);
            }
        }
        WithoutTools {
            inner: crate::local::LocalHost::new("localhost"),
            bin,
        }
    }
}

#[cfg(test)]
impl crate::Host for WithoutTools {
    fn name(&self) -> &str {
        "localhost"
    }
    fn exec(&mut self, cmd: &crate::Cmd) -> Result<crate::Output, crate::HostError> {
        let path = self.bin.path().display().to_string();
        self.inner.exec(&cmd.clone().env("PATH", path))
    }
    fn put(
        &mut self,
        data: &[u8],
        dest: &str,
        attrs: &crate::FileAttrs,
    ) -> Result<(), crate::HostError> {
        self.inner.put(data, dest, attrs)
    }
    fn get(&mut self, path: &str) -> Result<Vec<u8>, crate::HostError> {
        self.inner.get(path)
    }
}

#[cfg(test)]
mod fallback_tests {
    use super::*;
    use crate::{Ctx, Module};
    use serde_json::json;

    fn run(host: &mut dyn crate::Host, module: &dyn Module, args: Value) -> Map {
        let facts = Map::new();
        let mut ctx = Ctx {
            host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let Value::Object(map) = args else {
            panic!("object")
        };
        match module.run(&mut ctx, &map) {
            Ok(o) => o.to_result(),
            Err(e) => {
                let mut m = Map::new();
                m.insert("error".into(), Value::String(e.to_string()));
                m
            }
        }
    }

    #[test]
    fn wget_downloads_where_there_is_no_curl() {
        let served = tempfile::tempdir().expect("tempdir");
        std::fs::write(served.path().join("f.txt"), "hello\n").expect("write");
        let server = testbed::HttpServer::start(served.path()).expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let mut host = WithoutTools::new(&["curl"]);
        let get_url = &get_url::GetUrl;
        let r = run(
            &mut host,
            get_url,
            json!({"url": server.url("/f.txt"), "dest": format!("{d}/f 'x'.txt"), "headers": {"X-A": "b c"},
                   "checksum": "sha1:f572d396fae9206628714fb2ce00f72e94f2258f"}),
        );
        assert_eq!(
            (r["changed"].clone(), r.get("failed")),
            (json!(true), None),
            "{r:?}"
        );
        assert_eq!(r["msg"], "OK (6 bytes)");
        assert_eq!(r["status_code"], 200);
        let req = server.requests().pop().expect("request");
        assert!(
            req.header("user-agent")
                .is_some_and(|a| a == "ansible-httpget"),
            "{req:?}"
        );
        assert_eq!(req.header("x-a"), Some("b c"));
        let r = run(
            &mut host,
            get_url,
            json!({"url": server.url("/nope"), "dest": format!("{d}/nope")}),
        );
        assert_eq!(r["msg"], "Request failed");
        assert_eq!(r["response"], "HTTP Error 404: Not Found");
        let r = run(
            &mut host,
            get_url,
            json!({"url": server.url("/redirect/1"), "dest": d}),
        );
        assert_eq!(
            r["dest"],
            format!("{d}/json"),
            "named after where the redirect led: {r:?}"
        );

        let mut bare = WithoutTools::new(&["curl", "wget"]);
        let r = run(
            &mut bare,
            get_url,
            json!({"url": server.url("/f.txt"), "dest": format!("{d}/g"), "force": true}),
        );
        assert_eq!(
            r["error"],
            "`curl` was not found on the target (PATH searched by /bin/sh); install the package curl"
        );
        let r = run(&mut bare, &uri::Uri, json!({"url": server.url("/json")}));
        assert_eq!(
            r["error"],
            "`curl` was not found on the target (PATH searched by /bin/sh); install the package curl"
        );
    }
}
