//! The `file` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `file`.
pub struct File;

impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the file module is not written yet".into(),
        ))
    }
}
