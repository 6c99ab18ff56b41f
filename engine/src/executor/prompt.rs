//! A play's `vars_prompt`: each variable asked once per play, before its banner, on the
//! terminal (hidden while typed when `private`, the default), unless `-e` gives it.
//!
//! Without a terminal, Ansible warns "Not prompting as we are not in interactive mode" and
//! goes on with the default, or with `None` when there is none, which surfaces much later
//! as a wrong value. play warns the same way and uses the default, but a variable with no
//! default and no `-e` stops the run before any host is touched, saying how to give it.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Map, Value};

use super::Runner;
use crate::error::{exit, Diagnostic};
use crate::playbook::Play;
use crate::template::Scope;

/// One `vars_prompt` entry.
struct Ask {
    name: String,
    prompt: String,
    default: Option<Value>,
    private: bool,
    confirm: bool,
    encrypt: Option<String>,
    salt: Option<Value>,
    salt_size: Option<Value>,
    unsafe_: bool,
}

impl Runner {
    /// The values of `play`'s `vars_prompt`, asked now (those `-e` gives are not asked).
    pub(crate) fn prompt_vars(&self, play: &Play) -> Result<Map<String, Value>, Diagnostic> {
        let mut out = Map::new();
        let Some(spec) = play.keywords.get("vars_prompt") else {
            return Ok(out);
        };
        let interactive = std::io::stdin().is_terminal();
        let mut warned = false;
        for ask in parse(spec).map_err(|m| Diagnostic::new(m).at(play.span.clone()))? {
            if self.opts.extra_vars.contains_key(&ask.name) {
                continue;
            }
            // `unsafe` covers what was typed; a default is the playbook's own text.
            let answer = if interactive {
                let typed = read_answer(&ask).map_err(|e| {
                    Diagnostic::new(format!("vars_prompt '{}': {e}", ask.name))
                        .at(play.span.clone())
                        .exit_code(exit::ERROR)
                })?;
                if ask.private {
                    // Typed unseen, so never shown: masked in every output like a vault value.
                    crate::vault::register_secret(&typed);
                }
                match (typed.is_empty(), &ask.default) {
                    (true, Some(d)) => (d.clone(), false),
                    _ => (Value::String(typed), true),
                }
            } else {
                // Said once, as Ansible says a warning once.
                if !std::mem::replace(&mut warned, true) {
                    self.report
                        .warning("Not prompting as we are not in interactive mode");
                }
                match &ask.default {
                    Some(d) => (d.clone(), false),
                    None => {
                        return Err(Diagnostic::new(format!(
                            "vars_prompt '{}' has no default and there is no terminal to ask on; \
                             give it with -e {}=VALUE",
                            ask.name, ask.name
                        ))
                        .at(play.span.clone())
                        .exit_code(exit::ERROR));
                    }
                }
            };
            let (answer, typed) = answer;
            let answer = match &ask.encrypt {
                Some(scheme) => self.encrypt(&ask, scheme, answer).map_err(|m| {
                    Diagnostic::new(format!("vars_prompt '{}': {m}", ask.name))
                        .at(play.span.clone())
                })?,
                None if typed && ask.unsafe_ => crate::yaml::literal_text(answer),
                None => answer,
            };
            out.insert(ask.name, answer);
        }
        Ok(out)
    }

    /// `encrypt`: the answer through `password_hash` (passlib's scheme names, as Ansible).
    fn encrypt(&self, ask: &Ask, scheme: &str, answer: Value) -> Result<Value, String> {
        let mut vars = Map::new();
        vars.insert("answer".into(), answer);
        vars.insert("scheme".into(), Value::String(scheme.to_string()));
        vars.insert("salt".into(), ask.salt.clone().unwrap_or(Value::Null));
        vars.insert(
            "salt_size".into(),
            ask.salt_size.clone().unwrap_or(Value::Null),
        );
        self.templar
            .eval_expr(
                "answer | password_hash(scheme, salt=salt, salt_size=salt_size)",
                &Scope::new(vars),
            )
            .map_err(|e| e.message)
    }
}

/// The entries of a `vars_prompt` list, checked.
fn parse(spec: &Value) -> Result<Vec<Ask>, String> {
    let Value::Array(entries) = spec else {
        return Err("vars_prompt must be a list of mappings with a 'name'".into());
    };
    let flag = |m: &Map<String, Value>, k: &str, default: bool| match m.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => modules::args::ansible_bool(v)
            .ok_or_else(|| format!("vars_prompt: '{k}' must be a boolean, got {v}")),
    };
    let known = [
        "name",
        "prompt",
        "default",
        "private",
        "confirm",
        "encrypt",
        "salt",
        "salt_size",
        "unsafe",
    ];
    let mut out = Vec::new();
    for entry in entries {
        let Value::Object(m) = entry else {
            return Err("vars_prompt: each entry must be a mapping with a 'name'".into());
        };
        if let Some(bad) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "vars_prompt: unknown key '{bad}' (known: {})",
                known.join(", ")
            ));
        }
        let Some(Value::String(name)) = m.get("name") else {
            return Err("vars_prompt: an entry has no 'name'".into());
        };
        let text = |k: &str| match m.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        out.push(Ask {
            name: name.clone(),
            prompt: text("prompt").unwrap_or_else(|| name.clone()),
            default: m.get("default").filter(|d| !d.is_null()).cloned(),
            private: flag(m, "private", true)?,
            confirm: flag(m, "confirm", false)?,
            encrypt: text("encrypt"),
            salt: m.get("salt").cloned(),
            salt_size: m.get("salt_size").cloned(),
            unsafe_: flag(m, "unsafe", false)?,
        });
    }
    Ok(out)
}

/// Asks on the terminal (as Ansible words it: `prompt [default]: `), twice with `confirm`
/// until both answers agree.
fn read_answer(ask: &Ask) -> std::io::Result<String> {
    let shown = match &ask.default {
        Some(Value::String(d)) => format!("{} [{d}]: ", ask.prompt),
        Some(d) => format!("{} [{d}]: ", ask.prompt),
        None => format!("{}: ", ask.prompt),
    };
    loop {
        let first = read_line(&shown, ask.private)?;
        if !ask.confirm {
            return Ok(first);
        }
        let second = read_line(&format!("confirm {shown}"), ask.private)?;
        if first == second {
            return Ok(first);
        }
        eprintln!("***** VALUES ENTERED DO NOT MATCH ****");
    }
}

/// One line from the terminal on stdin, without its newline; not echoed when `private`.
fn read_line(shown: &str, private: bool) -> std::io::Result<String> {
    let mut stderr = std::io::stderr();
    stderr.write_all(shown.as_bytes())?;
    stderr.flush()?;
    let stdin = std::io::stdin();
    let hidden = if private { EchoOff::new(&stdin) } else { None };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(hidden);
    if private {
        // The newline the user typed was not echoed.
        stderr.write_all(b"\n")?;
    }
    if read? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the terminal closed before an answer was given",
        ));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The terminal's echo switched off while it lives (restored when dropped).
struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new(stdin: &std::io::Stdin) -> Option<EchoOff> {
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes -= rustix::termios::LocalModes::ECHO;
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet).ok()?;
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
