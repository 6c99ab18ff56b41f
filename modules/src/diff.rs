//! Unified diffs for `--diff` (stub: being written).
