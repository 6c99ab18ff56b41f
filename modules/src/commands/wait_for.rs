//! The `wait_for` module: wait for a port, a file, or a regex in either, polling ON the
//! target in one exec (a POSIX shell loop; no Python, no round trip per attempt).
//!
//! How each check is made, and why:
//! - A port on a local address (`127.0.0.1`, `localhost`, `::1`, `0.0.0.0`, `::`) is "up"
//!   when `/proc/net/tcp`/`tcp6` lists a listening socket on that port bound to a wildcard or
//!   loopback address. This makes no connection, so the watched service sees no probe
//!   (Ansible's `connect()` shows up in its logs and counts as a client).
//! - Any other host, or a target without `/proc/net/tcp`, is probed with `nc -z -w
//!   connect_timeout` when `nc` supports `-z`, else with bash's `/dev/tcp` (under
//!   `timeout` when available).
//! - `search_regex` on a port reads the banner through bash's `/dev/tcp` (or `nc` without
//!   bash) until the regex matches, the server closes, or time runs out. On a file and on
//!   that banner the regex is applied by `grep -Pz` with `(?m)` prepended (PCRE over the
//!   whole content, Python's `re.MULTILINE` semantics on bytes); where grep has no `-P`
//!   (busybox) `grep -E` is used line by line, so only ERE syntax within one line works.
//!   `match_groups`/`match_groupdict` come from re-applying the regex on the controller to
//!   the matched text.
//! - Time comes from `/proc/uptime` (hundredths of a second), else `date +%s`.
//!
//! `state: drained` is not supported (it would need Ansible's connection-table matching
//! of resolved addresses); it fails with a clear message. The result keys and messages are
//! Ansible's, including the file facts (`uid`, `owner`, `mode`, `size`, ... and `state`
//! replaced by the file type) that Ansible adds when `path` exists.
//! Not supported in check mode (as Ansible's `wait_for`).

use serde::Deserialize;

use super::support::{set_expanded, PRELUDE};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `wait_for`.
pub struct WaitFor;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum State {
    Absent,
    Drained,
    Present,
    Started,
    Stopped,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Absent => "absent",
            State::Drained => "drained",
            State::Present => "present",
            State::Started => "started",
            State::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Deserialize)]
struct WaitForArgs {
    host: Option<String>,
    #[serde(default = "default_timeout")]
    timeout: i64,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: i64,
    #[serde(default)]
    delay: i64,
    port: Option<u16>,
    active_connection_states: Option<Vec<String>>,
    path: Option<String>,
    search_regex: Option<String>,
    state: Option<State>,
    exclude_hosts: Option<Vec<String>>,
    #[serde(default = "default_sleep")]
    sleep: i64,
    msg: Option<String>,
}

fn default_timeout() -> i64 {
    300
}
fn default_connect_timeout() -> i64 {
    5
}
fn default_sleep() -> i64 {
    1
}

const CONNECTION_STATES: &[&str] = &[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// The polling loop. Inputs arrive as quoted variable assignments before it:
/// `w_mode` (port/path/sleep), `w_up` (1: wait for presence, empty: for absence),
/// `w_timeout`, `w_delay`, `w_sleep`, `w_ct`, `w_host`, `w_port`, `w_porthex`, `w_addrs`
/// (accepted local addresses as `/proc/net/tcp` prints them; empty: probe by connecting),
/// `w_rx` (regex, may be empty), `w_ere`/`w_ere_flags` (its POSIX ERE translation for
/// greps without `-P`; empty when there is none) and `$play_a` (the expanded path).
const LOOP: &str = r#"
w_now() {
  if read -r w_u w_rest </proc/uptime 2>/dev/null && [ "${w_u#*.}" != "$w_u" ]; then
    w_cs=$(( ${w_u%.*} * 100 + 1${w_u#*.} - 100 ))
  else
    w_cs=$(( $(date +%s) * 100 ))
  fi
}
w_limit() {
  w_now; w_left=$(( (w_end - w_cs + 99) / 100 )); [ "$w_left" -ge 1 ] || w_left=1
  [ "$w_left" -lt "$w_ct" ] && w_t=$w_left || w_t=$w_ct
  if command -v timeout >/dev/null 2>&1; then timeout "$w_t" "$@"; else "$@"; fi
}
w_match() {
  if [ -n "$w_pcre" ]; then LC_ALL=C grep -Pzq -- "(?m)$w_rx" "$1" 2>/dev/null
  else LC_ALL=C grep -Eq $w_ere_flags -- "$w_ere" "$1" 2>/dev/null; fi
}
w_show_match() {
  if [ -n "$w_pcre" ]; then LC_ALL=C grep -Pzo -- "(?m)$w_rx" "$1" 2>/dev/null | head -c 65536
  else LC_ALL=C grep -Eo $w_ere_flags -- "$w_ere" "$1" 2>/dev/null | head -n 1 | tr -d '\n'; fi
  printf '\0'
}
w_listening() {
  set --
  for w_f in /proc/net/tcp /proc/net/tcp6; do [ -r "$w_f" ] && set -- "$@" "$w_f"; done
  awk -v p="$w_porthex" -v ok="$w_addrs" 'FNR > 1 { n = split($2, a, ":"); if (a[n] == p && $4 == "0A" && index(ok, " " a[1] " ")) f = 1 } END { exit !f }' "$@"
}
w_connect() {
  if [ -n "$w_nc" ]; then w_limit nc -z -w "$w_ct" "$w_host" "$w_port" >/dev/null 2>&1
  else w_limit bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$w_host" "$w_port" >/dev/null 2>&1; fi
}
w_port_up() {
  if [ -n "$w_addrs" ]; then w_listening; else w_connect; fi
}
w_read_port() {
  : >"$w_buf"
  if [ -n "$w_bash" ]; then
    bash -c 'exec 3<>"/dev/tcp/$0/$1" && exec cat <&3' "$w_host" "$w_port" >"$w_buf" 2>/dev/null &
  else
    nc "$w_host" "$w_port" </dev/null >"$w_buf" 2>/dev/null &
  fi
  w_pid=$!
  while :; do
    if w_match "$w_buf"; then kill "$w_pid" 2>/dev/null; wait "$w_pid" 2>/dev/null; return 0; fi
    if ! kill -0 "$w_pid" 2>/dev/null; then wait "$w_pid" 2>/dev/null; w_match "$w_buf"; return; fi
    w_now; if [ "$w_cs" -ge "$w_end" ]; then kill "$w_pid" 2>/dev/null; wait "$w_pid" 2>/dev/null; return 1; fi
    sleep 0.1 2>/dev/null || sleep 1
  done
}
w_check() {
  case $w_mode in
  path)
    if [ -n "$w_up" ]; then
      if [ -e "$play_a" ]; then
        [ -z "$w_rx" ] && return 0
        [ -r "$play_a" ] && w_match "$play_a"
        return
      fi
      w_e=$(LC_ALL=C stat -L -- "$play_a" 2>&1 >/dev/null)
      case $w_e in
      *"No such file or directory"*|"") return 1 ;;
      *) w_now; play_st staterr $(( (w_cs - w_start) / 100 )) "${w_e##*: }"; exit 0 ;;
      esac
    else
      [ ! -e "$play_a" ]
    fi ;;
  port)
    if [ -n "$w_up" ]; then
      if [ -n "$w_rx" ]; then w_read_port; else w_port_up; fi
    else
      if w_port_up; then return 1; else return 0; fi
    fi ;;
  esac
}

w_now; w_start=$w_cs; w_end=$(( w_start + w_timeout * 100 ))
w_pcre=; if [ -n "$w_rx" ] && echo x | grep -Pq x 2>/dev/null; then w_pcre=1; fi
if [ -n "$w_rx" ] && [ -z "$w_pcre" ] && [ -z "$w_ere" ]; then
  play_st error "search_regex needs grep -P on the target: it has no POSIX ERE equivalent"; exit 0
fi
w_bash=; command -v bash >/dev/null 2>&1 && w_bash=1
w_anync=; command -v nc >/dev/null 2>&1 && w_anync=1
w_nc=; if [ -n "$w_anync" ] && nc -h 2>&1 | grep -q -- '-z'; then w_nc=1; fi
if [ "$w_mode" = port ] && [ -n "$w_addrs" ] && [ ! -r /proc/net/tcp ]; then w_addrs=; fi
if [ "$w_mode" = port ] && [ -n "$w_up" ] && [ -n "$w_rx" ]; then
  if [ -z "$w_bash" ] && [ -z "$w_anync" ]; then
    play_st error "wait_for needs bash or nc on the target to read from a port"; exit 0
  fi
elif [ "$w_mode" = port ] && [ -z "$w_addrs" ] && [ -z "$w_bash" ] && [ -z "$w_nc" ]; then
  play_st error "wait_for needs nc (with -z) or bash on the target to check a remote port"; exit 0
fi
if [ "$w_mode" = path ]; then play_st path "$play_a"; fi
w_buf=
if [ "$w_mode" = port ] && [ -n "$w_rx" ]; then
  w_buf=$(mktemp) || exit 1
  trap 'rm -f "$w_buf"' EXIT
fi
[ "$w_delay" -gt 0 ] && sleep "$w_delay"
if [ "$w_mode" = sleep ]; then
  sleep "$w_timeout"; w_now; play_st ok $(( (w_cs - w_start) / 100 )); exit 0
fi
w_ok=
while w_now; [ "$w_cs" -lt "$w_end" ]; do
  if w_check; then w_ok=1; break; fi
  sleep "$w_sleep"
done
w_now; w_el=$(( (w_cs - w_start) / 100 ))
if [ -z "$w_ok" ]; then play_st timeout "$w_el"; exit 0; fi
play_st ok "$w_el"
if [ -n "$w_rx" ]; then
  play_st match
  if [ "$w_mode" = path ]; then w_show_match "$play_a"; else w_show_match "$w_buf"; fi
fi
if [ "$w_mode" = path ] && { [ -e "$play_a" ] || [ -L "$play_a" ]; }; then
  if [ -L "$play_a" ]; then w_k=link; elif [ -d "$play_a" ]; then w_k=directory
  elif [ "$(stat -L -c %h -- "$play_a")" -gt 1 ]; then w_k=hard; else w_k=file; fi
  play_st stat "$(stat -c '%u %g %a %s' -- "$play_a")" "$w_k"
  play_st "$(stat -c %U -- "$play_a")" "$(stat -c %G -- "$play_a")"
fi
"#;

/// The addresses (as `/proc/net/tcp{,6}` print them, both byte orders) that a local
/// `host` connects to; `None` when `host` is not a local name.
fn local_listen_addresses(host: &str) -> Option<String> {
    const V4_ANY: &str = "00000000";
    const V4_LOOP: &[&str] = &["0100007F", "7F000001"];
    const V6_ANY: &str = "00000000000000000000000000000000";
    const V6_MAPPED_LOOP: &[&str] = &[
        "0000000000000000FFFF00000100007F",
        "0000000000000000FFFF00007F000001",
        "00000000000000000000FFFF7F000001",
    ];
    const V6_LOOP: &[&str] = &[
        "00000000000000000000000001000000",
        "00000000000000000000000000000001",
    ];
    let mut addrs: Vec<&str> = Vec::new();
    let v4 = |a: &mut Vec<&str>| {
        a.push(V4_ANY);
        a.extend(V4_LOOP);
        a.push(V6_ANY);
        a.extend(V6_MAPPED_LOOP);
    };
    let v6 = |a: &mut Vec<&str>| {
        a.push(V6_ANY);
        a.extend(V6_LOOP);
    };
    match host.trim().to_ascii_lowercase().as_str() {
        "127.0.0.1" | "0.0.0.0" => v4(&mut addrs),
        "::1" | "::" | "[::1]" | "ip6-localhost" => v6(&mut addrs),
        "localhost" | "localhost.localdomain" => {
            v4(&mut addrs);
            v6(&mut addrs);
        }
        _ => return None,
    }
    Some(format!(" {} ", addrs.join(" ")))
}

impl Module for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<WaitForArgs>()
    }
    fn supports_check(&self) -> bool {
        false
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: WaitForArgs = args::parse("wait_for", args)?;
        let state = a.state.unwrap_or(State::Started);
        let host = a.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = a.port.filter(|p| *p != 0);
        let path = a.path.clone().filter(|p| !p.is_empty());
        let fail = |msg: &str| Ok(Outcome::failed(msg).with("elapsed", 0));

        let regex = match &a.search_regex {
            Some(rx) => match fancy_regex::Regex::new(&format!("(?m){rx}")) {
                Ok(re) => Some(re),
                Err(e) => return fail(&format!("Invalid regular expression: {e}")),
            },
            None => None,
        };
        if port.is_some() && path.is_some() {
            return fail("port and path parameter can not both be passed to wait_for");
        }
        if path.is_some() && matches!(state, State::Stopped | State::Drained) {
            return fail(&format!(
                "state={} should only be used for checking a port in the wait_for module",
                state.as_str()
            ));
        }
        if a.exclude_hosts.is_some() && state != State::Drained {
            return fail("exclude_hosts should only be with state=drained");
        }
        for s in a.active_connection_states.iter().flatten() {
            if !CONNECTION_STATES.contains(&s.as_str()) {
                return fail(&format!("unknown active_connection_state ({s}) defined"));
            }
        }
        if state == State::Drained {
            return fail("state=drained is not supported by this wait_for");
        }

        let mode = match (&port, &path) {
            (Some(_), _) => "port",
            (None, Some(_)) => "path",
            (None, None) => "sleep",
        };
        let up = matches!(state, State::Started | State::Present);
        // A regex needs a connection; the listening-socket check only answers "is it up".
        let addrs = if a.search_regex.is_some() && up {
            None
        } else {
            local_listen_addresses(&host)
        };
        let port_num = port.unwrap_or(0);
        let mut script = Script::new()
            .raw(PRELUDE)
            .set("w_mode", mode)
            .raw(";")
            .set("w_up", if up { "1" } else { "" })
            .raw(";")
            .set("w_timeout", a.timeout.max(0).to_string())
            .raw(";")
            .set("w_delay", a.delay.max(0).to_string())
            .raw(";")
            .set("w_sleep", a.sleep.max(0).to_string())
            .raw(";")
            .set("w_ct", a.connect_timeout.max(1).to_string())
            .raw(";")
            .set("w_host", &host)
            .raw(";")
            .set("w_port", port_num.to_string())
            .raw(";")
            .set("w_porthex", format!("{port_num:04X}"))
            .raw(";")
            .set("w_addrs", addrs.unwrap_or_default())
            .raw(";")
            .set("w_rx", a.search_regex.clone().unwrap_or_default())
            .raw(";");
        let (ere, icase) = a
            .search_regex
            .as_deref()
            .and_then(python_regex_to_ere)
            .unwrap_or_default();
        script = script.set("w_ere", ere).raw(if icase {
            "; w_ere_flags=-i\n"
        } else {
            "; w_ere_flags=\n"
        });
        script = set_expanded(script, path.as_deref().unwrap_or(""), true).raw(LOOP);
        let out = ctx.host.exec(&Cmd::script(script))?;

        let report = Report::parse(&out.stdout);
        let Some(end) = report.end else {
            return Ok(Outcome::failed(format!(
                "wait_for could not run on the target: {}",
                out.stderr_str().trim()
            )));
        };
        let shown_path = report.path.clone().or(path.clone());
        let target = || match (&port, &shown_path) {
            (Some(p), _) => format!("{host}:{p}"),
            (None, Some(p)) => p.clone(),
            (None, None) => String::new(),
        };
        let outcome = match end {
            End::Error(msg) => Outcome::failed(msg),
            End::StatError(elapsed, err) => Outcome::failed(a.msg.clone().unwrap_or_else(|| {
                format!(
                    "Failed to stat {}, {err}",
                    shown_path.clone().unwrap_or_default()
                )
            }))
            .with("elapsed", elapsed),
            End::Timeout(elapsed) => {
                let default = match (up, &a.search_regex, port.is_some()) {
                    (true, Some(rx), _) => {
                        format!(
                            "Timeout when waiting for search string {rx} in {}",
                            target()
                        )
                    }
                    (true, None, true) => format!("Timeout when waiting for {}", target()),
                    (true, None, false) => format!("Timeout when waiting for file {}", target()),
                    (false, _, true) => format!("Timeout when waiting for {} to stop.", target()),
                    (false, _, false) => {
                        format!("Timeout when waiting for {} to be absent.", target())
                    }
                };
                Outcome::failed(a.msg.clone().unwrap_or(default)).with("elapsed", elapsed)
            }
            End::Ok(elapsed) => {
                let (groups, named) = match (&regex, &report.matched) {
                    (Some(re), Some(text)) => match_groups(re, text),
                    _ => (Vec::new(), Map::new()),
                };
                let mut o = Outcome::ok()
                    .with("state", state.as_str())
                    .with("port", port.map_or(Value::Null, Value::from))
                    .with(
                        "search_regex",
                        a.search_regex.clone().map_or(Value::Null, Value::from),
                    )
                    .with("match_groups", groups)
                    .with("match_groupdict", named)
                    .with("path", shown_path.clone().map_or(Value::Null, Value::from))
                    .with("elapsed", elapsed);
                if let Some(stat) = &report.stat {
                    stat.add_to(&mut o.result);
                }
                o
            }
        };
        Ok(outcome)
    }
}

/// A POSIX ERE for `grep -E` that matches the same lines as a Python regex, for targets
/// whose grep has no `-P` (busybox). Python's classes become bracket expressions, named and
/// non-capturing groups plain groups, lazy quantifiers greedy (the same lines match), and a
/// leading `(?i)` becomes `grep -i`. `None` for what ERE cannot say (lookaround,
/// backreferences, `\n`, other inline flags). Returns the ERE and whether to ignore case.
fn python_regex_to_ere(pattern: &str) -> Option<(String, bool)> {
    let (mut rest, icase) = match pattern.strip_prefix("(?i)") {
        Some(r) => (r, true),
        None => (pattern, false),
    };
    let mut out = String::new();
    let mut in_bracket = false;
    let class = |c: char, in_bracket: bool| -> Option<&'static str> {
        Some(match (c, in_bracket) {
            ('d', false) => "[0-9]",
            ('D', false) => "[^0-9]",
            ('s', false) => "[[:space:]]",
            ('S', false) => "[^[:space:]]",
            ('w', false) => "[[:alnum:]_]",
            ('W', false) => "[^[:alnum:]_]",
            ('d', true) => "0-9",
            ('s', true) => "[:space:]",
            ('w', true) => "[:alnum:]_",
            _ => return None,
        })
    };
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let next = rest.chars().next()?;
                rest = &rest[next.len_utf8()..];
                if let Some(cls) = class(next, in_bracket) {
                    out.push_str(cls);
                } else if next == 't' {
                    out.push('\t');
                } else if in_bracket {
                    // Backslash is literal inside POSIX brackets; these would change meaning.
                    if matches!(next, ']' | '^' | '-' | '[') || next.is_ascii_alphanumeric() {
                        return None;
                    }
                    out.push(next);
                } else if ".[]()*+?{}|^$\\".contains(next) {
                    out.push('\\');
                    out.push(next);
                } else if next == 'b' || next == 'B' || next.is_ascii_alphanumeric() {
                    return None;
                } else {
                    out.push(next);
                }
            }
            '[' if !in_bracket => {
                in_bracket = true;
                out.push('[');
                // A leading `^` and/or `]` belong to the bracket, not its end.
                if let Some(r) = rest.strip_prefix('^') {
                    out.push('^');
                    rest = r;
                }
                if let Some(r) = rest.strip_prefix(']') {
                    out.push(']');
                    rest = r;
                }
            }
            ']' if in_bracket => {
                in_bracket = false;
                out.push(']');
            }
            '(' if !in_bracket => {
                if let Some(r) = rest.strip_prefix("?:") {
                    rest = r;
                } else if let Some(r) = rest.strip_prefix("?P<") {
                    let close = r.find('>')?;
                    rest = &r[close + 1..];
                } else if rest.starts_with('?') {
                    return None;
                }
                out.push('(');
            }
            '?' if !in_bracket && matches!(out.chars().last(), Some('*' | '+' | '?' | '}')) => {
                // Lazy quantifier: the same lines match with the greedy one.
            }
            _ => out.push(c),
        }
    }
    (!in_bracket).then_some((out, icase))
}

/// Python's `match.groups()` and `match.groupdict()` of the first match in `text`.
fn match_groups(re: &fancy_regex::Regex, text: &str) -> (Vec<Value>, Map) {
    let Ok(Some(caps)) = re.captures(text) else {
        return (Vec::new(), Map::new());
    };
    let groups = (1..caps.len())
        .map(|i| {
            caps.get(i)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_string()))
        })
        .collect();
    let mut named = Map::new();
    for name in re.capture_names().flatten() {
        let value = caps
            .name(name)
            .map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
        named.insert(name.to_string(), value);
    }
    (groups, named)
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Ok(i64),
    Timeout(i64),
    StatError(i64, String),
    Error(String),
}

/// The file facts Ansible adds to a result that has an existing `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathInfo {
    uid: i64,
    gid: i64,
    owner: String,
    group: String,
    mode: String,
    size: i64,
    kind: String,
}

impl PathInfo {
    fn add_to(&self, result: &mut Map) {
        result.insert("uid".into(), Value::from(self.uid));
        result.insert("gid".into(), Value::from(self.gid));
        result.insert("owner".into(), Value::from(self.owner.clone()));
        result.insert("group".into(), Value::from(self.group.clone()));
        result.insert("mode".into(), Value::from(self.mode.clone()));
        result.insert("state".into(), Value::from(self.kind.clone()));
        result.insert("size".into(), Value::from(self.size));
    }
}

/// Everything the loop printed, read from its NUL-separated records.
#[derive(Debug, Default)]
struct Report {
    path: Option<String>,
    end: Option<End>,
    matched: Option<String>,
    stat: Option<PathInfo>,
}

impl Report {
    fn parse(stdout: &[u8]) -> Self {
        let text = String::from_utf8_lossy(stdout);
        let mut fields = text.split('\0');
        let mut report = Report::default();
        let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<i64>().ok());
        while let Some(tag) = fields.next() {
            match tag {
                "path" => report.path = fields.next().map(str::to_string),
                "ok" => report.end = num(fields.next()).map(End::Ok),
                "timeout" => report.end = num(fields.next()).map(End::Timeout),
                "staterr" => {
                    let elapsed = num(fields.next()).unwrap_or(0);
                    let err = fields.next().unwrap_or("").trim().to_string();
                    report.end = Some(End::StatError(elapsed, err));
                }
                "error" => report.end = fields.next().map(|m| End::Error(m.to_string())),
                "match" => report.matched = fields.next().map(str::to_string),
                "stat" => {
                    // uid gid mode size in one field (stat -c), then the kind; then owner, group.
                    let nums: Vec<&str> = fields.next().unwrap_or("").split(' ').collect();
                    let kind = fields.next().unwrap_or("file").to_string();
                    let owner = fields.next().unwrap_or("").to_string();
                    let group = fields.next().unwrap_or("").to_string();
                    if let [uid, gid, mode, size] = nums.as_slice() {
                        let uid_n = uid.parse().unwrap_or(-1);
                        let gid_n = gid.parse().unwrap_or(-1);
                        report.stat = Some(PathInfo {
                            uid: uid_n,
                            gid: gid_n,
                            // GNU stat says UNKNOWN for an id without a name; Python uses the number.
                            owner: if owner.is_empty() || owner == "UNKNOWN" {
                                uid.to_string()
                            } else {
                                owner
                            },
                            group: if group.is_empty() || group == "UNKNOWN" {
                                gid.to_string()
                            } else {
                                group
                            },
                            mode: format!("{:04o}", u32::from_str_radix(mode, 8).unwrap_or(0)),
                            size: size.parse().unwrap_or(0),
                            kind,
                        });
                    }
                }
                _ => {}
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::run_module;
    use super::*;
    use serde_json::json;
    use std::net::TcpListener;

    fn run(args: Value) -> Map {
        run_module(&WaitFor, false, args)
            .expect("module runs")
            .to_result()
    }

    #[test]
    fn file_with_regex_reports_groups_and_file_facts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log 'x' $(y)");
        std::fs::write(&path, "start\nready: port=8080 id=7\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let r = run(
            json!({"path": p, "search_regex": "^ready: port=(?P<port>\\d+) id=(\\d)$", "timeout": 5}),
        );
        assert_eq!(r.get("failed"), None);
        assert_eq!(r["changed"], false);
        assert_eq!(r["match_groups"], json!(["8080", "7"]));
        assert_eq!(r["match_groupdict"], json!({"port": "8080"}));
        assert_eq!(r["path"], p);
        assert_eq!(r["state"], "file");
        assert_eq!(r["size"], 28);
        assert_eq!(r["elapsed"], 0);
        assert_eq!(r["search_regex"], "^ready: port=(?P<port>\\d+) id=(\\d)$");
        assert_eq!(r["port"], Value::Null);
        assert!(r["mode"].as_str().expect("mode").starts_with('0'));
    }

    #[test]
    fn file_timeouts_and_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let m = missing.to_str().expect("utf-8");
        let r = run(json!({"path": m, "timeout": 1}));
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], format!("Timeout when waiting for file {m}"));
        assert_eq!(r["elapsed"], 1);
        let r = run(json!({"path": m, "state": "absent", "timeout": 1}));
        assert_eq!(r.get("failed"), None);
        assert_eq!(r["state"], "absent");
        let present = dir.path().join("here");
        std::fs::write(&present, "no match").expect("write");
        let p = present.to_str().expect("utf-8");
        let r = run(json!({"path": p, "search_regex": "ready", "timeout": 1, "sleep": 1}));
        assert_eq!(
            r["msg"],
            format!("Timeout when waiting for search string ready in {p}")
        );
        let r = run(json!({"path": p, "state": "absent", "timeout": 1, "msg": "custom"}));
        assert_eq!(r["msg"], "custom");
    }

    #[test]
    fn waits_for_a_file_that_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("later");
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1200));
            std::fs::write(p, "x").expect("write");
        });
        let r = run(json!({"path": path.to_str().expect("utf-8"), "timeout": 10}));
        writer.join().expect("writer");
        assert_eq!(r.get("failed"), None);
        assert!(r["elapsed"].as_i64().expect("elapsed") >= 1);
    }

    #[test]
    fn local_port_listening_and_stopped() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let r = run(json!({"port": port, "timeout": 5}));
        assert_eq!(r.get("failed"), None, "{r:?}");
        assert_eq!(r["port"], port);
        assert_eq!(r["state"], "started");
        assert_eq!(r["path"], Value::Null);
        assert_eq!(r["match_groups"], json!([]));
        drop(listener);
        let r = run(json!({"port": port, "state": "stopped", "timeout": 5}));
        assert_eq!(r.get("failed"), None, "{r:?}");
        let r = run(json!({"port": port, "timeout": 1}));
        assert_eq!(
            r["msg"],
            format!("Timeout when waiting for 127.0.0.1:{port}")
        );
    }

    #[test]
    fn other_hosts_are_probed_by_connecting() {
        // 127.0.0.2 is not one of the local names, so the loop connects (nc or bash).
        let Ok(listener) = TcpListener::bind("127.0.0.2:0") else {
            return;
        };
        let port = listener.local_addr().expect("addr").port();
        let r = run(json!({"host": "127.0.0.2", "port": port, "timeout": 5}));
        if r.get("msg").and_then(Value::as_str)
            == Some("wait_for needs nc (with -z) or bash on the target to check a remote port")
        {
            return; // a busybox-only machine: nothing to probe with, and it says so
        }
        assert_eq!(r.get("failed"), None, "{r:?}");
        drop(listener);
        let r = run(json!({"host": "127.0.0.2", "port": port, "timeout": 1, "state": "started"}));
        assert_eq!(
            r["msg"],
            format!("Timeout when waiting for 127.0.0.2:{port}")
        );
        let r = run(json!({"host": "127.0.0.2", "port": port, "timeout": 5, "state": "stopped"}));
        assert_eq!(r.get("failed"), None, "{r:?}");
    }

    #[test]
    fn port_banner_regex() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                use std::io::Write;
                let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        });
        let r = run(json!({"port": port, "search_regex": "OpenSSH_(\\d+)", "timeout": 5}));
        // Should the module not have connected, this lets the server thread finish.
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        server.join().expect("server");
        assert_eq!(r.get("failed"), None, "{r:?}");
        assert_eq!(r["match_groups"], json!(["9"]));
    }

    #[test]
    fn sleeps_without_port_or_path() {
        let r = run(json!({"timeout": 1}));
        assert_eq!(r.get("failed"), None);
        assert_eq!(r["elapsed"], 1);
    }

    #[test]
    fn argument_errors_have_ansibles_words() {
        let r = run(json!({"port": 1, "path": "/x"}));
        assert_eq!(
            r["msg"],
            "port and path parameter can not both be passed to wait_for"
        );
        assert_eq!(r["elapsed"], 0);
        let r = run(json!({"path": "/x", "state": "stopped"}));
        assert_eq!(
            r["msg"],
            "state=stopped should only be used for checking a port in the wait_for module"
        );
        let r = run(json!({"path": "/x", "search_regex": "("}));
        assert!(r["msg"]
            .as_str()
            .expect("msg")
            .starts_with("Invalid regular expression: "));
        let err = run_module(&WaitFor, false, json!({"state": "up"})).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "value of state must be one of: absent, drained, present, started, stopped, got: up"
        );
    }

    #[test]
    fn python_regexes_become_posix_eres() {
        let ere = |p: &str| python_regex_to_ere(p);
        assert_eq!(
            ere(r"^ready: port=(?P<port>\d+) id=(\d)$"),
            Some((r"^ready: port=([0-9]+) id=([0-9])$".to_string(), false))
        );
        assert_eq!(
            ere(r"(?i)(?:a|b)\s+\w*?[\d.x]\.\/"),
            Some((
                r"(a|b)[[:space:]]+[[:alnum:]_]*[0-9.x]\./".to_string(),
                true
            ))
        );
        assert_eq!(ere(r"[]a]"), Some((r"[]a]".to_string(), false)));
        assert_eq!(ere(r"foo(?=bar)"), None);
        assert_eq!(ere(r"(a)\1"), None);
        assert_eq!(ere(r"a\nb"), None);
        assert_eq!(ere(r"[a"), None);
    }

    #[test]
    fn local_addresses() {
        assert!(local_listen_addresses("localhost")
            .expect("local")
            .contains(" 0100007F "));
        assert!(local_listen_addresses("::1")
            .expect("local")
            .contains(" 00000000000000000000000001000000 "));
        assert_eq!(local_listen_addresses("example.com"), None);
    }

    #[test]
    fn report_parsing() {
        let r =
            Report::parse(b"path\0/x\0ok\x003\0match\0abc\0stat\x000 0 644 12\0file\0root\0root\0");
        assert_eq!(r.end, Some(End::Ok(3)));
        assert_eq!(r.matched.as_deref(), Some("abc"));
        let stat = r.stat.expect("stat");
        assert_eq!((stat.mode.as_str(), stat.size), ("0644", 12));
        assert_eq!(Report::parse(b"garbage").end, None);
    }
}
