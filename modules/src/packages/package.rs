//! The `package` module.
use crate::{Ctx, Map, Module, ModuleError, Outcome};
/// `package`.
pub struct Package;
impl Module for Package {
    fn name(&self) -> &'static str {
        "package"
    }
    fn run(&self, _ctx: &mut Ctx<'_>, _args: &Map) -> Result<Outcome, ModuleError> {
        Err(ModuleError::Failed("todo".into()))
    }
}
