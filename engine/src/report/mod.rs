//! What a run prints: Ansible's default output (banners, per-host lines, PLAY RECAP) or JSON lines.
//!
//! Lines for one task are collected per host and printed whole, in inventory order, so hosts
//! running in parallel never interleave mid-line.

pub mod pyfmt;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// How a host's task ended, as the recap counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipping",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
        }
    }
}

/// The counters of one host's PLAY RECAP line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// One line of task output for one host (a task result, or one loop item's result).
#[derive(Debug, Clone)]
pub struct HostLine {
    pub host: String,
    pub delegated_to: Option<String>,
    pub status: Status,
    /// `Some(label)` for a loop item.
    pub item: Option<String>,
    pub result: Map<String, Value>,
    pub ignored: bool,
    /// debug results are always shown with their data.
    pub show_result: bool,
    /// `no_log`: the result is replaced by Ansible's censored notice.
    pub censored: bool,
    /// Unified diff text to print before the line (`--diff`).
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Prints run events. Shared by all host workers; every write takes the lock once.
pub struct Reporter {
    format: Format,
    verbosity: u8,
    out: Mutex<Box<dyn Write + Send>>,
    pub color: bool,
    play: Mutex<String>,
    task: Mutex<String>,
}

const CENSORED: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

impl Reporter {
    pub fn new(format: Format, verbosity: u8) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self::with_writer(format, verbosity, Box::new(std::io::stdout()), color)
    }

    pub fn with_writer(
        format: Format,
        verbosity: u8,
        out: Box<dyn Write + Send>,
        color: bool,
    ) -> Self {
        Self {
            format,
            verbosity,
            out: Mutex::new(out),
            color,
            play: Mutex::new(String::new()),
            task: Mutex::new(String::new()),
        }
    }

    pub fn verbosity(&self) -> u8 {
        self.verbosity
    }

    /// Whether an ok or changed task's result is printed (`-v`, JSON events); when it is not,
    /// nothing reads a result that is neither registered nor failed once its task is counted.
    pub fn prints_results(&self) -> bool {
        self.format == Format::Json || self.verbosity > 0
    }

    fn write(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            // Output errors (a closed pipe) must not abort a run that is changing hosts.
            // Values that came from the vault never reach the output (see `vault::redact`).
            let _ = out.write_all(crate::vault::redact(text).as_bytes());
            let _ = out.flush();
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A progress bar for a task running on several hosts, when a person is watching
    /// (text output to a terminal, NO_COLOR unset); `None` otherwise.
    pub fn progress(&self, task: &str, hosts: usize) -> Option<indicatif::ProgressBar> {
        if self.format != Format::Text || !self.color || hosts < 2 {
            return None;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(hosts as u64),
            indicatif::ProgressDrawTarget::stdout(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{pos}/{len} hosts] {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_message(crate::vault::redact(task));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    }

    pub fn play_start(&self, name: &str) {
        if let Ok(mut p) = self.play.lock() {
            *p = name.to_string();
        }
        match self.format {
            Format::Text => self.write(&format!("\n{}\n", banner(&format!("PLAY [{name}]")))),
            Format::Json => self.write(&format!(
                "{}\n",
                json!({"event": "play_start", "play": name})
            )),
        }
    }

    pub fn task_start(&self, name: &str, handler: bool) {
        if let Ok(mut t) = self.task.lock() {
            *t = name.to_string();
        }
        let kind = if handler { "RUNNING HANDLER" } else { "TASK" };
        match self.format {
            Format::Text => self.write(&format!("\n{}\n", banner(&format!("{kind} [{name}]")))),
            Format::Json => self.write(&format!(
                "{}\n",
                json!({"event": "task_start", "task": name, "handler": handler})
            )),
        }
    }

    pub fn warning(&self, msg: &str) {
        match self.format {
            Format::Text => {
                let text = format!("[WARNING]: {msg}\n");
                eprint!("{}", self.paint(&crate::vault::redact(&text), "1;35"));
            }
            Format::Json => self.write(&format!("{}\n", json!({"event": "warning", "msg": msg}))),
        }
    }

    /// A failed task's place in the playbook, on stderr (as ansible-core 2.19's `[ERROR]: Task failed`).
    pub fn task_error(&self, text: &str) {
        if self.format == Format::Text {
            eprint!("{}", self.paint(&crate::vault::redact(text), "0;31"));
        }
    }

    /// Print one task's lines for all hosts at once, in the order given.
    pub fn host_lines(&self, lines: &[HostLine]) {
        let mut text = String::new();
        for line in lines {
            match self.format {
                Format::Text => text.push_str(&self.render_line(line)),
                Format::Json => {
                    let task = self.task.lock().map(|t| t.clone()).unwrap_or_default();
                    let play = self.play.lock().map(|p| p.clone()).unwrap_or_default();
                    let result = if line.censored {
                        censor(&line.result)
                    } else {
                        line.result.clone()
                    };
                    let mut ev = json!({
                        "event": "host_result", "play": play, "task": task, "host": line.host,
                        "status": line.status.word(), "ignored": line.ignored, "result": result,
                    });
                    if let (Some(item), Value::Object(m)) = (&line.item, &mut ev) {
                        m.insert("item".into(), Value::String(item.clone()));
                    }
                    if let (Some(d), Value::Object(m)) = (&line.delegated_to, &mut ev) {
                        m.insert("delegated_to".into(), Value::String(d.clone()));
                    }
                    text.push_str(&format!("{ev}\n"));
                }
            }
        }
        self.write(&text);
    }

    fn render_line(&self, line: &HostLine) -> String {
        let mut out = String::new();
        if let Some(diff) = &line.diff {
            if !line.censored {
                out.push_str(diff);
                if !diff.ends_with('\n') {
                    out.push('\n');
                }
                // Ansible leaves a blank line between a diff and the host's line.
                out.push('\n');
            }
        }
        let host = match &line.delegated_to {
            Some(d) if d != &line.host => format!("[{} -> {}]", line.host, d),
            _ => format!("[{}]", line.host),
        };
        let result = if line.censored {
            censor(&line.result)
        } else {
            display_result(&line.result)
        };
        let indent = if self.verbosity >= 3 || line.show_result {
            Some(4)
        } else {
            None
        };
        let dumped = || pyfmt::dump_json(&Value::Object(result.clone()), indent);
        let text = match line.status {
            Status::Ok | Status::Changed => {
                let mut s = format!("{}: {host}", line.status.word());
                if let Some(item) = &line.item {
                    s.push_str(&format!(" => (item={item})"));
                }
                if line.show_result || self.verbosity > 0 {
                    s.push_str(&format!(" => {}", dumped()));
                }
                self.paint(
                    &s,
                    if line.status == Status::Changed {
                        "0;33"
                    } else {
                        "0;32"
                    },
                )
            }
            Status::Skipped => {
                let mut s = format!("skipping: {host}");
                if let Some(item) = &line.item {
                    s.push_str(&format!(" => (item={item}) "));
                }
                if self.verbosity > 0 {
                    s.push_str(&format!(" => {}", dumped()));
                }
                self.paint(&s, "0;36")
            }
            Status::Failed => {
                let s = match &line.item {
                    Some(item) => format!("failed: {host} (item={item}) => {}", dumped()),
                    None => format!("fatal: {host}: FAILED! => {}", dumped()),
                };
                self.paint(&s, "0;31")
            }
            Status::Unreachable => self.paint(
                &format!("fatal: {host}: UNREACHABLE! => {}", dumped()),
                "1;31",
            ),
        };
        out.push_str(&text);
        out.push('\n');
        if line.ignored && line.item.is_none() {
            out.push_str(&self.paint("...ignoring", "0;36"));
            out.push('\n');
        }
        out
    }

    /// `PLAY RECAP`: one line per host, sorted by name, in Ansible's exact format.
    pub fn recap(&self, stats: &IndexMap<String, Stats>) {
        let mut hosts: Vec<&String> = stats.keys().collect();
        hosts.sort();
        match self.format {
            Format::Text => {
                let mut text = format!("\n{}\n", banner("PLAY RECAP"));
                for h in hosts {
                    let s = stats[h];
                    text.push_str(&format!(
                        "{:<26} : {} {} {} {} {} {} {}\n",
                        h,
                        field("ok", s.ok),
                        field("changed", s.changed),
                        field("unreachable", s.unreachable),
                        field("failed", s.failed),
                        field("skipped", s.skipped),
                        field("rescued", s.rescued),
                        field("ignored", s.ignored),
                    ));
                }
                text.push('\n');
                self.write(&text);
            }
            Format::Json => {
                let mut m = Map::new();
                for h in hosts {
                    let s = stats[h];
                    m.insert(h.clone(), json!({"ok": s.ok, "changed": s.changed, "unreachable": s.unreachable,
                        "failed": s.failed, "skipped": s.skipped, "rescued": s.rescued, "ignored": s.ignored}));
                }
                self.write(&format!("{}\n", json!({"event": "recap", "hosts": m})));
            }
        }
    }

    /// A message for the user outside any task (e.g. "no hosts matched").
    pub fn note(&self, msg: &str) {
        match self.format {
            Format::Text => self.write(&format!("{msg}\n")),
            Format::Json => self.write(&format!("{}\n", json!({"event": "note", "msg": msg}))),
        }
    }
}

fn field(name: &str, n: u32) -> String {
    format!("{name}={n:<4}")
}

/// `TASK [name] ****`: the title, a space, then stars up to 80 columns (at least 3).
pub fn banner(title: &str) -> String {
    let width = title.chars().count() + 1;
    let stars = 80usize.saturating_sub(width).max(3);
    format!("{title} {}", "*".repeat(stars))
}

fn censor(result: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("censored".into(), Value::String(CENSORED.into()));
    m.insert(
        "changed".into(),
        result.get("changed").cloned().unwrap_or(Value::Bool(false)),
    );
    m
}

/// Keys Ansible keeps out of displayed results.
fn display_result(result: &Map<String, Value>) -> Map<String, Value> {
    let mut m = result.clone();
    // `failed` is what the line's status already says; Ansible does not repeat it.
    // Warnings, deprecations and exceptions are shown on lines of their own, not again here.
    m.retain(|k, _| {
        !k.starts_with("_ansible")
            && !matches!(
                k.as_str(),
                "diff" | "failed" | "warnings" | "deprecations" | "exception"
            )
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn recap_matches_ansible_byte_for_byte() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let r = Reporter::with_writer(Format::Text, 0, Box::new(Buf(buf.clone())), false);
        let mut stats = IndexMap::new();
        stats.insert(
            "localhost".to_string(),
            Stats {
                ok: 7,
                changed: 2,
                skipped: 1,
                ignored: 1,
                ..Stats::default()
            },
        );
        r.recap(&stats);
        let text = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf-8");
        // Expected text copied from ansible-playbook 2.19 output.
        assert_eq!(text, "\nPLAY RECAP *********************************************************************\nlocalhost                  : ok=7    changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=1   \n\n");
    }

    #[test]
    fn banners_fill_80_columns() {
        assert_eq!(
            banner("TASK [say]"),
            "TASK [say] *********************************************************************"
        );
        assert_eq!(
            banner(&format!("TASK [{}]", "x".repeat(90)))
                .matches('*')
                .count(),
            3
        );
    }
}
