//! Modules about the system as a whole: facts.

pub mod setup;
