//! The `copy` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `copy`.
pub struct Copy;

impl Module for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the copy module is not written yet".into(),
        ))
    }
}
