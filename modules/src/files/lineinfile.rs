//! The `lineinfile` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `lineinfile`.
pub struct LineInFile;

impl Module for LineInFile {
    fn name(&self) -> &'static str {
        "lineinfile"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the lineinfile module is not written yet".into(),
        ))
    }
}
