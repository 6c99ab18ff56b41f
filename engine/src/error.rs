//! Source positions (`Span`) and user-facing errors (`Diagnostic`) rendered as `file:line:col` with a caret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Ansible's exit codes, which scripts depend on.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const HOST_FAILED: i32 = 2;
    pub const UNREACHABLE: i32 = 3;
    pub const PARSE: i32 = 4;
    pub const BAD_OPTIONS: i32 = 5;
    pub const INTERRUPTED: i32 = 99;
}

/// Where something was written: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(file: &Path, line: usize, col: usize) -> Self {
        Self {
            file: Arc::new(file.to_path_buf()),
            line,
            col,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// An error for the user: what went wrong, where, and in which task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    /// The task (or play) the error belongs to, shown as `in task "name"`.
    pub task: Option<String>,
    /// Extra lines shown after the source excerpt (hints, "did you mean").
    pub notes: Vec<String>,
    /// The process exit code this error leads to.
    pub code: i32,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            task: None,
            notes: Vec::new(),
            code: exit::PARSE,
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        if self.span.is_none() {
            self.span = span;
        }
        self
    }
    pub fn in_task(mut self, task: impl Into<String>) -> Self {
        if self.task.is_none() {
            self.task = Some(task.into());
        }
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn exit_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// The full text: `ERROR! message`, then `  --> file:line:col (task "x")`, the source line and a caret.
    pub fn render(&self) -> String {
        let mut out = format!("ERROR! {}\n", self.message);
        if let Some(span) = &self.span {
            out.push_str(&format!("  --> {span}"));
            if let Some(task) = &self.task {
                out.push_str(&format!(" (task \"{task}\")"));
            }
            out.push('\n');
            if let Some(line) = source_line(&span.file, span.line) {
                let num = span.line.to_string();
                let pad = " ".repeat(num.len());
                out.push_str(&format!(
                    "{pad} |\n{num} | {line}\n{pad} | {}^\n",
                    caret_indent(&line, span.col)
                ));
            }
        } else if let Some(task) = &self.task {
            out.push_str(&format!("  in task \"{task}\"\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  = {note}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostic {}

fn source_line(file: &Path, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .nth(line.checked_sub(1)?)
        .map(|l| l.trim_end().to_string())
}

/// Spaces up to the column, keeping tabs so the caret lines up under the source.
fn caret_indent(line: &str, col: usize) -> String {
    line.chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_and_caret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("site.yml");
        std::fs::write(&file, "- hosts: all\n  tasks:\n    - copyy: {}\n").expect("write");
        let d = Diagnostic::new("couldn't resolve module/action 'copyy'")
            .at(Span::new(&file, 3, 7))
            .in_task("copyy")
            .note("did you mean 'copy'?");
        let text = d.render();
        assert!(text.contains("site.yml:3:7 (task \"copyy\")"), "{text}");
        assert!(
            text.ends_with("3 |     - copyy: {}\n  |       ^\n  = did you mean 'copy'?\n"),
            "{text}"
        );
    }
}
