//! Modules about the system as a whole: facts.

mod distribution;
pub mod setup;
