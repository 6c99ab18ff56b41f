//! Unified diffs for `--diff` output and the `diff` result key.

use crate::FileDiff;

/// A before/after pair for a file, with Ansible's headers (`before: path`, `after: path`).
pub fn file_diff(path: &str, before: &str, after: &str) -> FileDiff {
    FileDiff {
        before_header: path.to_string(),
        after_header: path.to_string(),
        before: before.to_string(),
        after: after.to_string(),
    }
}

/// The unified diff text Ansible prints for a `FileDiff` (3 lines of context).
pub fn unified(diff: &FileDiff) -> String {
    similar::TextDiff::from_lines(&diff.before, &diff.after)
        .unified_diff()
        .context_radius(3)
        .header(
            &header("before", &diff.before_header),
            &header("after", &diff.after_header),
        )
        .to_string()
}

/// `before: path`, or just `before` when there is no header (a file that did not exist).
fn header(side: &str, name: &str) -> String {
    if name.is_empty() {
        side.to_string()
    } else {
        format!("{side}: {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_has_headers_and_changes() {
        let d = file_diff("/etc/motd", "a\nb\n", "a\nc\n");
        assert_eq!(
            unified(&d),
            "--- before: /etc/motd\n+++ after: /etc/motd\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
    }
}
