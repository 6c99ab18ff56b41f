//! The `systemd_service` module (alias `systemd`): start, stop, restart, reload, enable and mask
//! systemd units (`.service`, `.socket`, `.timer`, template instances such as
//! `app@beryl3.socket`), deciding as Ansible's `systemd_service.py` does.
//!
//! One exec reads everything the decisions need: `systemctl daemon-reload`/`daemon-reexec`
//! first when asked (as Ansible, never in check mode), then `systemctl show -- NAME` (every
//! property: the result's `status`, as Ansible returns it), `systemctl is-enabled -- NAME`
//! (status and output), whether `/etc/init.d/NAME` exists and is linked from an rc directory,
//! and whether systemd runs the host. The controller decides (`plan`) and, when something has
//! to change, one more exec runs the `systemctl` actions in Ansible's order (mask/unmask,
//! enable/disable, start/stop/restart/reload), stopping at the first that fails. Only a
//! mask change together with `enabled` costs a third exec: after `unmask` the enablement has
//! to be read again, as Ansible does.
//!
//! Result keys as Ansible: `name`, `status`, `enabled` (when asked), `state` (when asked;
//! `restarted`/`reloaded` report `started`), `changed`.
//!
//! Deviations, on purpose:
//! - A unit that does not exist fails with Ansible's message ("Could not find the requested
//!   service NAME: host") followed by what systemd said about it in parentheses.
//! - Ansible's fallbacks for hosts whose `systemctl show` is broken (`list-unit-files` after a
//!   "Failed to parse bus message") are not made: such a host reads as not having the unit,
//!   unless `is-enabled` knows it. Its chroot and `SYSTEMD_OFFLINE` warnings are not given.
//! - `daemon_reload` alone reports ok, as Ansible does (its `changed` stays false).
//! - Ansible asks `is-enabled -l` whether the unit is enabled and plain `is-enabled` whether
//!   it is masked; here one plain `is-enabled` answers both (`-l` adds the unit's symlinks
//!   as more lines, which would only hide `indirect` and friends from Ansible's check).

use serde::Deserialize;

use crate::files::common::{Records, PRELUDE};
use crate::{args, tools, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `systemd_service`, also answering to `systemd`.
pub struct SystemdService;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnitState {
    Reloaded,
    Restarted,
    Started,
    Stopped,
}

impl UnitState {
    fn as_str(self) -> &'static str {
        match self {
            UnitState::Reloaded => "reloaded",
            UnitState::Restarted => "restarted",
            UnitState::Started => "started",
            UnitState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    #[default]
    System,
    User,
    Global,
}

#[derive(Debug, Deserialize)]
struct SystemdServiceArgs {
    #[serde(alias = "service", alias = "unit")]
    name: Option<String>,
    state: Option<UnitState>,
    enabled: Option<bool>,
    force: Option<bool>,
    masked: Option<bool>,
    #[serde(default, alias = "daemon-reload")]
    daemon_reload: bool,
    #[serde(default, alias = "daemon-reexec")]
    daemon_reexec: bool,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    no_block: bool,
}

/// What to do with a unit: `systemd_service`'s arguments, also what `service` hands over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub name: Option<String>,
    pub state: Option<UnitState>,
    pub enabled: Option<bool>,
    pub masked: Option<bool>,
    pub daemon_reload: bool,
    pub daemon_reexec: bool,
    pub scope: Scope,
    pub no_block: bool,
    pub force: bool,
}

impl Request {
    /// Ansible's `required_one_of`, `required_by` and glob checks.
    pub(crate) fn validate(&self) -> Result<(), ModuleError> {
        if self.state.is_none()
            && self.enabled.is_none()
            && self.masked.is_none()
            && !self.daemon_reload
            && !self.daemon_reexec
        {
            return Err(ModuleError::Args(
                "one of the following is required: state, enabled, masked, daemon_reload, daemon_reexec"
                    .into(),
            ));
        }
        if self.name.is_none() {
            for (given, key) in [
                (self.state.is_some(), "state"),
                (self.enabled.is_some(), "enabled"),
                (self.masked.is_some(), "masked"),
            ] {
                if given {
                    return Err(ModuleError::Args(format!(
                        "missing parameter(s) required by '{key}': name"
                    )));
                }
            }
        }
        if let Some(unit) = &self.name {
            for glob in ["*", "?", "["] {
                if unit.contains(glob) {
                    return Err(ModuleError::Args(format!(
                        "This module does not currently support using glob patterns, found '{glob}' in service name: {unit}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `__cap KEY CMD...`: run CMD, record its status (`KEY.rc`), stdout (`KEY`) and stderr
/// (`KEY.err`), and return its status. Needs `PRELUDE`'s `__kv`.
pub(crate) const CAPTURE: &str = r#"__cap() { __k=$1; shift; { __e=$( { __o=$("$@"); __r=$?; __kv "$__k.rc" "$__r"; __kv "$__k" "$__o"; exit "$__r"; } 2>&1 >&3 ); __r=$?; } 3>&1; __kv "$__k.err" "$__e"; return "$__r"; }
"#;

/// Records `managed=1` when systemd runs the host (Ansible's `is_systemd_managed` canaries).
pub(crate) const MANAGED: &str = "for __d in /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/; do if [ -d \"$__d\" ]; then __kv managed 1; break; fi; done\n";

/// `__sc`: `systemctl` with the scope and flags every call of this task gets, as Ansible
/// adds them to its base command.
fn systemctl_function(req: &Request) -> Script {
    let mut s = Script::new().raw("__sc() { systemctl");
    match req.scope {
        Scope::System => {}
        Scope::User => s = s.raw("--user"),
        Scope::Global => s = s.raw("--global"),
    }
    if req.no_block {
        s = s.raw("--no-block");
    }
    if req.force {
        s = s.raw("--force");
    }
    s.raw("\"$@\"; }\n")
}

/// The start of every script: helpers, the systemd canaries, the `systemctl` guard, the
/// runtime directory `--user` needs (Ansible sets it the same way) and the unit's name.
fn script_head(req: &Request) -> Script {
    let mut s = Script::new()
        .raw(PRELUDE)
        .raw(CAPTURE)
        .raw(MANAGED)
        .need("systemctl")
        .raw("[ -n \"${XDG_RUNTIME_DIR:-}\" ] || { XDG_RUNTIME_DIR=/run/user/$(id -u); export XDG_RUNTIME_DIR; }\n")
        .then(systemctl_function(req));
    if let Some(name) = &req.name {
        s = s.set("u", name).raw("\n");
    }
    s
}

/// The one exec that reads the unit (after reloading systemd when asked and not in check mode).
fn probe_script(req: &Request, check: bool) -> Script {
    let mut s = script_head(req);
    if req.daemon_reload && !check {
        s = s.raw("__cap daemon-reload __sc daemon-reload || exit 1\n");
    }
    if req.daemon_reexec && !check {
        s = s.raw("__cap daemon-reexec __sc daemon-reexec || exit 1\n");
    }
    if req.name.is_some() {
        s = s.raw(
            "__cap show __sc show -- \"$u\"\n\
             __cap en __sc is-enabled -- \"$u\"\n\
             case $u in /*) __i=$u;; *) __i=/etc/init.d/$u;; esac\n\
             if [ -e \"$__i\" ]; then __kv initd 1\n\
             for __f in /etc/rc*.d/S??\"$u\"; do if [ -e \"$__f\" ]; then __kv sysv 1; break; fi; done\n\
             fi\n",
        );
    }
    s
}

/// One captured command: status, stdout, stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Captured {
    pub rc: i32,
    pub out: String,
    pub err: String,
}

impl Captured {
    fn from(records: &Records, key: &str) -> Option<Captured> {
        let rc = records.get(&format!("{key}.rc"))?.trim().parse().ok()?;
        Some(Captured {
            rc,
            out: records.get(key).unwrap_or_default().to_string(),
            err: records
                .get(&format!("{key}.err"))
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// What the probe read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Probe {
    pub managed: bool,
    pub daemon_reload: Option<Captured>,
    pub daemon_reexec: Option<Captured>,
    pub show: Option<Captured>,
    pub is_enabled: Option<Captured>,
    pub initd: bool,
    pub sysv_enabled: bool,
}

impl Probe {
    pub(crate) fn parse(stdout: &[u8]) -> Probe {
        let r = Records::parse(stdout);
        Probe {
            managed: r.get("managed") == Some("1"),
            daemon_reload: Captured::from(&r, "daemon-reload"),
            daemon_reexec: Captured::from(&r, "daemon-reexec"),
            show: Captured::from(&r, "show"),
            is_enabled: Captured::from(&r, "en"),
            initd: r.get("initd") == Some("1"),
            sysv_enabled: r.get("sysv") == Some("1"),
        }
    }
}

/// Ansible's `parse_systemctl_show`: `Key=value` lines; only `Exec*` values in `{ ... }` may
/// span lines.
pub(crate) fn parse_show(text: &str) -> Map {
    let mut parsed = Map::new();
    let mut multival: Vec<&str> = Vec::new();
    let mut key: Option<&str> = None;
    for line in text.split('\n') {
        match key {
            None => {
                if let Some((k, v)) = line.split_once('=') {
                    if k.starts_with("Exec")
                        && v.trim_start().starts_with('{')
                        && !v.trim_end().ends_with('}')
                    {
                        multival.push(v);
                        key = Some(k);
                        continue;
                    }
                    parsed.insert(k.to_string(), Value::String(py_strip(v).to_string()));
                }
            }
            Some(k) => {
                multival.push(line);
                if line.trim_end().ends_with('}') {
                    let joined = multival.join("\n");
                    parsed.insert(k.to_string(), Value::String(py_strip(&joined).to_string()));
                    multival.clear();
                    key = None;
                }
            }
        }
    }
    parsed
}

/// Python's `str.strip()` (ASCII whitespace, as systemd prints).
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b' || c == '\x0c')
}

fn request_was_ignored(out: &str) -> bool {
    !out.contains('=') && (out.contains("ignoring request") || out.contains("ignoring command"))
}

/// `systemctl is-enabled` answers that show the unit exists (systemctl(1), systemd 244).
const VALID_ENABLED_STATES: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "linked",
    "linked-runtime",
    "masked",
    "masked-runtime",
    "static",
    "indirect",
    "disabled",
    "generated",
    "transient",
];

/// What the probe says about the unit, as Ansible concludes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Unit {
    pub status: Map,
    pub found: bool,
    /// What systemd said about a unit it does not have (for the "not found" message).
    pub missing_reason: String,
}

/// Ansible's reading of `show` and `is-enabled`; `Err` is the task's failure message.
pub(crate) fn read_unit(unit: &str, probe: &Probe) -> Result<Unit, String> {
    let mut status = Map::new();
    let mut is_systemd = false;
    let show = probe.show.clone().unwrap_or_default();
    let enabled = probe.is_enabled.clone().unwrap_or_default();
    if show.rc == 0 && !(request_was_ignored(&show.out) || request_was_ignored(&show.err)) {
        if !show.out.is_empty() {
            status = parse_show(&show.out);
            let load = status.get("LoadState").and_then(Value::as_str);
            is_systemd = load.is_some_and(|l| l != "not-found");
            let masked = load == Some("masked");
            if is_systemd && !masked {
                if let Some(err) = status.get("LoadError").and_then(Value::as_str) {
                    return Err(format!("Error loading unit file '{unit}': {err}"));
                }
            }
        }
    } else if VALID_ENABLED_STATES.contains(&enabled.out.trim()) {
        is_systemd = true;
    }
    let found = is_systemd || probe.initd;
    let missing_reason = [enabled.err.trim(), show.err.trim()]
        .into_iter()
        .find(|e| !e.is_empty())
        .map(str::to_string)
        .or_else(|| {
            status
                .get("LoadError")
                .and_then(Value::as_str)
                .map(load_error_text)
        })
        .unwrap_or_default();
    Ok(Unit {
        status,
        found,
        missing_reason,
    })
}

/// The human part of `LoadError=org.freedesktop.systemd1.NoSuchUnit "Unit x not found."`.
fn load_error_text(value: &str) -> String {
    match value.split_once(' ') {
        Some((_, text)) => text.trim_matches('"').to_string(),
        None => value.to_string(),
    }
}

/// Ansible's `fail_if_missing` message, with systemd's own words when it gave some.
pub(crate) fn missing_message(unit: &str, reason: &str) -> String {
    if reason.is_empty() {
        format!("Could not find the requested service {unit}: host")
    } else {
        format!("Could not find the requested service {unit}: host ({reason})")
    }
}

/// Whether Ansible counts the unit as enabled, from `is-enabled`'s status and first line.
pub(crate) fn is_enabled(req: &Request, probe: &Probe, answer: &Captured) -> bool {
    match answer.rc {
        0 => !matches!(
            answer.out.lines().next().unwrap_or("").trim_end(),
            "enabled-runtime" | "indirect" | "alias"
        ),
        1 => {
            req.scope == Scope::System
                && probe.initd
                && !answer.out.trim().ends_with("disabled")
                && probe.sysv_enabled
        }
        _ => false,
    }
}

/// Mask or unmask: decided on the probe's `is-enabled`, as Ansible.
pub(crate) fn mask_action(req: &Request, probe: &Probe) -> Option<&'static str> {
    let want = req.masked?;
    let masked = probe
        .is_enabled
        .as_ref()
        .is_some_and(|e| e.out.trim() == "masked");
    (masked != want).then_some(if want { "mask" } else { "unmask" })
}

/// Enable or disable, from whether the unit counts as enabled now.
pub(crate) fn enable_action(req: &Request, enabled_now: bool) -> Option<&'static str> {
    let want = req.enabled?;
    (enabled_now != want).then_some(if want { "enable" } else { "disable" })
}

/// Start, stop, restart or reload, from `ActiveState`; `Err` when systemd gave none.
pub(crate) fn state_action(
    req: &Request,
    status: &Map,
) -> Result<Option<&'static str>, &'static str> {
    let Some(want) = req.state else {
        return Ok(None);
    };
    let Some(active) = status.get("ActiveState").and_then(Value::as_str) else {
        return Err("Service is in unknown state");
    };
    let running = matches!(active, "active" | "activating");
    Ok(match want {
        UnitState::Started => (!running).then_some("start"),
        UnitState::Stopped => (running || active == "deactivating").then_some("stop"),
        UnitState::Restarted if running => Some("restart"),
        UnitState::Reloaded if running => Some("reload"),
        UnitState::Restarted | UnitState::Reloaded => Some("start"),
    })
}

/// The task's failure for an action `systemctl` refused, in Ansible's words.
fn action_failure(unit: &str, found: bool, action: &str, c: &Captured, missing: &str) -> String {
    match action {
        "mask" | "unmask" if !found => missing_message(unit, missing),
        "mask" | "unmask" => format!("Failed to {action} the service ({unit}): {}", c.err.trim()),
        "enable" | "disable" => format!("Unable to {action} service {unit}: {}{}", c.out, c.err),
        _ => format!("Unable to {action} service {unit}: {}", c.err),
    }
}

/// What an actions exec did: the verb that failed (with its output), if one did, and the
/// `is-enabled` answer read after the actions when it was asked for.
type ActionsRun = (Option<(&'static str, Captured)>, Option<Captured>);

/// Run the actions in one exec, stopping at the first that fails; its name and output.
fn run_actions(
    ctx: &mut Ctx<'_>,
    req: &Request,
    verbs: &[&'static str],
    read_enabled: bool,
) -> Result<ActionsRun, ModuleError> {
    let mut s = script_head(req);
    for verb in verbs {
        s = s
            .raw("__cap")
            .arg(verb)
            .raw("__sc")
            .arg(verb)
            .raw("-- \"$u\" || exit 1\n");
    }
    if read_enabled {
        s = s.raw("__cap en __sc is-enabled -- \"$u\"\n");
    }
    let out = ctx.host.exec(&Cmd::script(s))?;
    tools::missing_tool(&out)?;
    let r = Records::parse(&out.stdout);
    for verb in verbs {
        match Captured::from(&r, verb) {
            Some(c) if c.rc == 0 => {}
            Some(c) => return Ok((Some((verb, c)), None)),
            None => {
                return Err(ModuleError::Failed(format!(
                    "systemctl {verb} did not run: {}",
                    out.stderr_str().trim()
                )))
            }
        }
    }
    Ok((None, Captured::from(&r, "en")))
}

/// How the caller wants the unit handled besides the request itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Warnings to report with the result (`service`'s ignored arguments).
    pub warnings: Vec<String>,
    /// The module that runs (`service`): fail early on a host systemd does not run.
    pub require_systemd: Option<&'static str>,
}

/// Bring the unit to the requested state: one probe, then at most one exec of actions
/// (two when a mask change is followed by `enabled`).
pub(crate) fn manage(
    ctx: &mut Ctx<'_>,
    req: &Request,
    opts: Options,
) -> Result<Outcome, ModuleError> {
    let out = ctx.host.exec(&Cmd::script(probe_script(req, ctx.check)))?;
    let probe = Probe::parse(&out.stdout);
    if let Some(module) = opts.require_systemd {
        if !probe.managed {
            return Ok(with_warnings(
                Outcome::failed(format!(
                    "The {module} module here manages systemd units only, and systemd does not run this host"
                )),
                &opts.warnings,
            ));
        }
    }
    tools::missing_tool(&out)?;
    for (step, captured) in [
        ("daemon-reload", &probe.daemon_reload),
        ("daemon-reexec", &probe.daemon_reexec),
    ] {
        if let Some(c) = captured.as_ref().filter(|c| c.rc != 0) {
            return Ok(with_warnings(
                Outcome::failed(format!("failure {} during {step}: {}", c.rc, c.err)),
                &opts.warnings,
            ));
        }
    }
    let mut outcome = Outcome::ok();
    outcome.result.insert(
        "name".into(),
        req.name.clone().map_or(Value::Null, Value::String),
    );
    let Some(unit) = req.name.as_deref() else {
        outcome
            .result
            .insert("status".into(), Value::Object(Map::new()));
        return Ok(with_warnings(outcome, &opts.warnings));
    };
    let info = match read_unit(unit, &probe) {
        Ok(info) => info,
        Err(msg) => return Ok(with_warnings(Outcome::failed(msg), &opts.warnings)),
    };
    outcome
        .result
        .insert("status".into(), Value::Object(info.status.clone()));
    let fail = |msg: String| with_warnings(Outcome::failed(msg), &opts.warnings);
    let missing = || missing_message(unit, &info.missing_reason);

    let mut enabled_answer = probe.is_enabled.clone().unwrap_or_default();
    let mut verbs: Vec<&'static str> = Vec::new();
    if let Some(action) = mask_action(req, &probe) {
        outcome.changed = true;
        if !ctx.check {
            if req.enabled.is_some() {
                // The enablement after an unmask is only known once it is done.
                let (failed, answer) = run_actions(ctx, req, &[action], true)?;
                if let Some((verb, c)) = failed {
                    return Ok(fail(action_failure(
                        unit,
                        info.found,
                        verb,
                        &c,
                        &info.missing_reason,
                    )));
                }
                enabled_answer = answer.unwrap_or_default();
            } else {
                verbs.push(action);
            }
        }
    }
    if req.enabled.is_some() {
        if !info.found {
            return Ok(fail(missing()));
        }
        let now = is_enabled(req, &probe, &enabled_answer);
        let mut reported = now;
        if let Some(action) = enable_action(req, now) {
            outcome.changed = true;
            reported = !now;
            verbs.push(action);
        }
        outcome
            .result
            .insert("enabled".into(), Value::Bool(reported));
    }
    if let Some(want) = req.state {
        if !info.found {
            return Ok(fail(missing()));
        }
        let reported = match want {
            UnitState::Restarted | UnitState::Reloaded => "started",
            other => other.as_str(),
        };
        outcome.result.insert("state".into(), Value::from(reported));
        match state_action(req, &info.status) {
            Ok(Some(action)) => {
                outcome.changed = true;
                verbs.push(action);
            }
            Ok(None) => {}
            Err(msg) => {
                let mut failed = fail(msg.to_string());
                failed
                    .result
                    .insert("status".into(), Value::Object(info.status.clone()));
                return Ok(failed);
            }
        }
    }
    if !ctx.check && !verbs.is_empty() {
        let (failed, _) = run_actions(ctx, req, &verbs, false)?;
        if let Some((verb, c)) = failed {
            return Ok(fail(action_failure(
                unit,
                info.found,
                verb,
                &c,
                &info.missing_reason,
            )));
        }
    }
    Ok(with_warnings(outcome, &opts.warnings))
}

fn with_warnings(mut outcome: Outcome, warnings: &[String]) -> Outcome {
    if !warnings.is_empty() {
        outcome
            .result
            .insert("warnings".into(), Value::from(warnings.to_vec()));
    }
    outcome
}

impl Module for SystemdService {
    fn name(&self) -> &'static str {
        "systemd_service"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["systemd"]
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<SystemdServiceArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: SystemdServiceArgs = args::parse("systemd_service", raw)?;
        let req = Request {
            name: a.name,
            state: a.state,
            enabled: a.enabled,
            masked: a.masked,
            daemon_reload: a.daemon_reload,
            daemon_reexec: a.daemon_reexec,
            scope: a.scope,
            no_block: a.no_block,
            force: a.force.unwrap_or(false),
        };
        req.validate()?;
        manage(ctx, &req, Options::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::services::scripted::{records, ScriptedHost};
    use crate::Host;

    /// `systemctl show` of a unit, trimmed to what the decisions read.
    fn show(active: &str, load: &str) -> String {
        format!(
            "Id=app.service\nLoadState={load}\nActiveState={active}\nSubState=running\n\
             ExecStart={{ path=/bin/sh ; argv[]=/bin/sh -c echo ; ignore_errors=no }}\nDescription={{odd\n"
        )
    }

    fn probe(show_out: &str, enabled: &str, enabled_rc: &str, enabled_err: &str) -> Vec<u8> {
        records(&[
            ("managed", "1"),
            ("show.rc", "0"),
            ("show", show_out),
            ("show.err", ""),
            ("en.rc", enabled_rc),
            ("en", enabled),
            ("en.err", enabled_err),
        ])
    }

    fn run(host: &mut ScriptedHost, args: serde_json::Value, check: bool) -> Outcome {
        host.run(&SystemdService, args, check, &Map::new())
            .expect("runs")
    }

    #[test]
    fn the_capture_helper_keeps_status_stdout_and_stderr_apart() {
        let script = Script::new()
            .raw(PRELUDE)
            .raw(CAPTURE)
            .raw("__cap x sh -c 'echo out; echo err >&2; exit 3'; __kv after \"$?\"\n");
        let out = LocalHost::new("localhost")
            .exec(&Cmd::script(script))
            .expect("runs");
        let r = Records::parse(&out.stdout);
        assert_eq!(r.get("x.rc"), Some("3"));
        assert_eq!(r.get("x"), Some("out"));
        assert_eq!(r.get("x.err"), Some("err"));
        assert_eq!(r.get("after"), Some("3"));
    }

    #[test]
    fn a_converged_unit_costs_one_exec() {
        let mut host =
            ScriptedHost::new().reply(&probe(&show("active", "loaded"), "enabled", "0", ""), "", 0);
        let out = run(
            &mut host,
            serde_json::json!({"name": "app", "state": "started", "enabled": true}),
            false,
        );
        assert!(!out.changed && !out.failed, "{out:?}");
        assert_eq!(host.commands.len(), 1);
        assert_eq!(out.result["name"], "app");
        assert_eq!(out.result["state"], "started");
        assert_eq!(out.result["enabled"], true);
        assert_eq!(out.result["status"]["ActiveState"], "active");
        assert_eq!(
            out.result["status"]["ExecStart"],
            "{ path=/bin/sh ; argv[]=/bin/sh -c echo ; ignore_errors=no }"
        );
        // A `{` outside `Exec*` does not swallow the lines after it.
        assert_eq!(out.result["status"]["Description"], "{odd");
        let probe_script = &host.commands[0];
        assert!(probe_script.contains("u=app"), "{probe_script}");
        assert!(!probe_script.contains("daemon-reload"), "{probe_script}");
    }

    #[test]
    fn enable_then_start_in_one_exec_in_ansibles_order() {
        let mut host = ScriptedHost::new()
            .reply(
                &probe(&show("inactive", "loaded"), "disabled", "1", ""),
                "",
                0,
            )
            .reply(
                &records(&[
                    ("enable.rc", "0"),
                    ("enable", ""),
                    ("start.rc", "0"),
                    ("start", ""),
                ]),
                "",
                0,
            );
        let out = run(
            &mut host,
            serde_json::json!({"name": "app@beryl3.socket", "state": "started", "enabled": "yes"}),
            false,
        );
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(out.result["enabled"], true);
        let actions = &host.commands[1];
        let enable = actions.find("__sc enable --").expect("enable");
        let start = actions.find("__sc start --").expect("start");
        assert!(enable < start, "{actions}");
        assert!(actions.contains("u=app@beryl3.socket"), "{actions}");
    }

    #[test]
    fn check_mode_reads_only_and_skips_daemon_reload() {
        let mut host = ScriptedHost::new().reply(
            &probe(&show("inactive", "loaded"), "disabled", "1", ""),
            "",
            0,
        );
        let out = run(
            &mut host,
            serde_json::json!({"name": "app", "state": "started", "daemon_reload": true}),
            true,
        );
        assert!(out.changed);
        assert_eq!(host.commands.len(), 1);
        assert!(!host.commands[0].contains("__sc daemon-reload"));
    }

    #[test]
    fn daemon_reload_runs_first_and_alone_is_not_a_change() {
        let mut host = ScriptedHost::new().reply(
            &records(&[("managed", "1"), ("daemon-reload.rc", "0")]),
            "",
            0,
        );
        let out = run(&mut host, serde_json::json!({"daemon-reload": true}), false);
        assert!(!out.changed && !out.failed, "{out:?}");
        assert!(host.commands[0].contains("__cap daemon-reload __sc daemon-reload"));
        assert_eq!(out.result["name"], Value::Null);
        let mut host = ScriptedHost::new().reply(
            &records(&[
                ("daemon-reload.rc", "1"),
                ("daemon-reload.err", "Access denied"),
            ]),
            "",
            1,
        );
        let out = run(&mut host, serde_json::json!({"daemon_reload": true}), false);
        assert_eq!(
            out.msg.as_deref(),
            Some("failure 1 during daemon-reload: Access denied")
        );
    }

    #[test]
    fn a_missing_unit_fails_with_ansibles_words_and_systemds() {
        let show_out = "Id=nosuch.service\nLoadState=not-found\nActiveState=inactive\n\
                        LoadError=org.freedesktop.systemd1.NoSuchUnit \"Unit nosuch.service not found.\"\n";
        let mut host = ScriptedHost::new().reply(
            &probe(
                show_out,
                "",
                "1",
                "Failed to get unit file state for nosuch.service: No such file or directory",
            ),
            "",
            0,
        );
        let out = run(
            &mut host,
            serde_json::json!({"name": "nosuch", "state": "started"}),
            false,
        );
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("Could not find the requested service nosuch: host (Failed to get unit file state for nosuch.service: No such file or directory)")
        );
        assert_eq!(host.commands.len(), 1);
    }

    #[test]
    fn restarted_and_reloaded_report_started() {
        for (want, verb, active) in [
            ("restarted", "restart", "active"),
            ("reloaded", "reload", "active"),
            ("restarted", "start", "inactive"),
        ] {
            let mut host = ScriptedHost::new()
                .reply(&probe(&show(active, "loaded"), "enabled", "0", ""), "", 0)
                .reply(&records(&[(&format!("{verb}.rc"), "0")]), "", 0);
            let out = run(
                &mut host,
                serde_json::json!({"name": "app", "state": want}),
                false,
            );
            assert!(out.changed, "{want}");
            assert_eq!(out.result["state"], "started");
            assert!(
                host.commands[1].contains(&format!("__sc {verb} --")),
                "{want}"
            );
        }
    }

    #[test]
    fn stopped_stops_running_and_deactivating_units() {
        for (active, changes) in [
            ("active", true),
            ("deactivating", true),
            ("inactive", false),
            ("failed", false),
        ] {
            let mut host = ScriptedHost::new()
                .reply(&probe(&show(active, "loaded"), "enabled", "0", ""), "", 0)
                .reply(&records(&[("stop.rc", "0")]), "", 0);
            let out = run(
                &mut host,
                serde_json::json!({"name": "app", "state": "stopped"}),
                false,
            );
            assert_eq!(out.changed, changes, "{active}");
        }
    }

    #[test]
    fn enabled_reads_is_enabled_as_ansible() {
        let req = Request {
            enabled: Some(true),
            ..Request::default()
        };
        let probe = Probe::default();
        let answer = |out: &str, rc| Captured {
            rc,
            out: out.into(),
            err: String::new(),
        };
        assert!(is_enabled(&req, &probe, &answer("enabled", 0)));
        assert!(is_enabled(&req, &probe, &answer("static", 0)));
        assert!(!is_enabled(&req, &probe, &answer("indirect", 0)));
        assert!(!is_enabled(&req, &probe, &answer("enabled-runtime", 0)));
        assert!(!is_enabled(&req, &probe, &answer("disabled", 1)));
        let sysv = Probe {
            initd: true,
            sysv_enabled: true,
            ..Probe::default()
        };
        assert!(is_enabled(&req, &sysv, &answer("", 1)));
    }

    #[test]
    fn unmask_then_enable_reads_the_enablement_again() {
        let mut host = ScriptedHost::new()
            .reply(
                &probe(&show("inactive", "masked"), "masked", "1", ""),
                "",
                0,
            )
            .reply(
                &records(&[("unmask.rc", "0"), ("en.rc", "0"), ("en", "enabled")]),
                "",
                0,
            );
        let out = run(
            &mut host,
            serde_json::json!({"name": "app", "masked": false, "enabled": true}),
            false,
        );
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(out.result["enabled"], true);
        assert_eq!(host.commands.len(), 2, "already enabled after unmask");
        assert!(host.commands[1].contains("__sc unmask --"));
    }

    #[test]
    fn a_refused_action_fails_with_ansibles_words() {
        let mut host = ScriptedHost::new()
            .reply(
                &probe(&show("inactive", "loaded"), "enabled", "0", ""),
                "",
                0,
            )
            .reply(
                &records(&[
                    ("start.rc", "1"),
                    ("start", ""),
                    ("start.err", "Job for app.service failed."),
                ]),
                "",
                1,
            );
        let out = run(
            &mut host,
            serde_json::json!({"name": "app", "state": "started"}),
            false,
        );
        assert_eq!(
            out.msg.as_deref(),
            Some("Unable to start service app: Job for app.service failed.")
        );
    }

    #[test]
    fn hostile_names_are_quoted_and_globs_refused() {
        let name = "a'b $(touch x) `id`.service";
        let mut host =
            ScriptedHost::new().reply(&probe(&show("active", "loaded"), "enabled", "0", ""), "", 0);
        run(
            &mut host,
            serde_json::json!({"name": name, "state": "started"}),
            false,
        );
        assert!(host.commands[0].contains(&format!("u={}", crate::quote(name))));
        let err = ScriptedHost::new()
            .run(
                &SystemdService,
                serde_json::json!({"name": "app*", "state": "started"}),
                false,
                &Map::new(),
            )
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "This module does not currently support using glob patterns, found '*' in service name: app*"
        );
    }

    #[test]
    fn arguments_are_checked_as_ansible_does() {
        let err = |args| {
            ScriptedHost::new()
                .run(&SystemdService, args, false, &Map::new())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            err(serde_json::json!({"name": "app"})),
            "one of the following is required: state, enabled, masked, daemon_reload, daemon_reexec"
        );
        assert_eq!(
            err(serde_json::json!({"state": "started"})),
            "missing parameter(s) required by 'state': name"
        );
        assert_eq!(
            err(serde_json::json!({"name": "app", "state": "running"})),
            "value of state must be one of: reloaded, restarted, started, stopped, got: running"
        );
    }

    #[test]
    fn scope_and_flags_reach_every_systemctl_call() {
        let mut host =
            ScriptedHost::new().reply(&probe(&show("active", "loaded"), "enabled", "0", ""), "", 0);
        run(
            &mut host,
            serde_json::json!({"name": "app", "state": "started", "scope": "user", "no_block": true, "force": true}),
            false,
        );
        assert!(host.commands[0].contains("__sc() { systemctl --user --no-block --force \"$@\"; }"));
    }
}
