//! The `find` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `find`.
pub struct Find;

impl Module for Find {
    fn name(&self) -> &'static str {
        "find"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the find module is not written yet".into(),
        ))
    }
}
