//! The `tempfile` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `tempfile`.
pub struct TempFile;

impl Module for TempFile {
    fn name(&self) -> &'static str {
        "tempfile"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the tempfile module is not written yet".into(),
        ))
    }
}
