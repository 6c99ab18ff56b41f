//! The `script` module (being written).
