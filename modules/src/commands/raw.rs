//! The `raw` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `raw`.
pub struct Raw;

impl Module for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the raw module is not written yet".into(),
        ))
    }
}
