//! The `replace` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `replace`.
pub struct Replace;

impl Module for Replace {
    fn name(&self) -> &'static str {
        "replace"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the replace module is not written yet".into(),
        ))
    }
}
