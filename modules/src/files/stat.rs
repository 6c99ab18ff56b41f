//! The `stat` module (stub: being written).

use crate::{Ctx, Map, Module, ModuleError, Outcome};

/// `stat`.
pub struct Stat;

impl Module for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed(
            "the stat module is not written yet".into(),
        ))
    }
}
