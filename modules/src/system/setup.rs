//! The `setup` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `setup`.
pub struct Setup;

impl Module for Setup {
    fn name(&self) -> &'static str {
        "setup"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the setup module is not written yet".into(),
        ))
    }
}
