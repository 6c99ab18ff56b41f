//! The `slurp` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `slurp`.
pub struct Slurp;

impl Module for Slurp {
    fn name(&self) -> &'static str {
        "slurp"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the slurp module is not written yet".into(),
        ))
    }
}
