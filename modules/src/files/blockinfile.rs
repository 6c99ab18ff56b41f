//! The `blockinfile` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `blockinfile`.
pub struct BlockInFile;

impl Module for BlockInFile {
    fn name(&self) -> &'static str {
        "blockinfile"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the blockinfile module is not written yet".into(),
        ))
    }
}
