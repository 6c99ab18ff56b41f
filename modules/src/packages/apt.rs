//! The `apt` module.
use crate::{Ctx, Map, Module, ModuleError, Outcome};
/// `apt`.
pub struct Apt;
impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed("todo".into()))
    }
}
