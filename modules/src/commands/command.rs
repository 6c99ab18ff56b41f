//! The `command` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `command`.
pub struct Command;

impl Module for Command {
    fn name(&self) -> &'static str {
        "command"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the command module is not written yet".into(),
        ))
    }
}
