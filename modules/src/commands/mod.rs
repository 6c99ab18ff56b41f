//! Modules that run commands: command, shell, raw, wait_for.

pub mod command;
pub mod raw;
pub mod shell;
pub mod wait_for;
