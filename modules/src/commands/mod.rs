//! Modules that run commands: command, shell, raw, script, wait_for.

pub mod command;
pub mod ping;
pub mod raw;
pub mod script;
pub mod shell;
pub(crate) mod support;
pub mod wait_for;
