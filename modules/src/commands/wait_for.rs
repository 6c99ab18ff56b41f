//! The `wait_for` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `wait_for`.
pub struct WaitFor;

impl Module for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the wait_for module is not written yet".into(),
        ))
    }
}
