//! Modules about the system as a whole: facts.

mod distribution;
mod hardware;
mod network;
pub mod setup;
