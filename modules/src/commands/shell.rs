//! The `shell` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `shell`.
pub struct Shell;

impl Module for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the shell module is not written yet".into(),
        ))
    }
}
