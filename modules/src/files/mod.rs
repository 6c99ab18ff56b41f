//! Modules that manage files on the target.

pub mod blockinfile;
pub mod common;
pub mod copy;
pub mod file;
pub mod find;
pub mod lineinfile;
pub mod pyre;
pub mod replace;
pub mod slurp;
pub mod stat;
pub mod tempfile;
#[cfg(test)]
mod testkit;
pub mod textfile;
