//! Modules about the system as a whole: facts, kernel parameters, host name, time zone.

mod distribution;
mod hardware;
pub mod hostname;
mod network;
pub mod setup;
pub mod sysctl;
pub mod timezone;
