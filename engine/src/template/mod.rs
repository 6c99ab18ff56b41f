//! TEMPORARY compile stub (replaced by the real templar).
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
pub type Map = serde_json::Map<String, Value>;
pub trait HostVars: Send + Sync {
    fn host_names(&self) -> Vec<String>;
    fn vars_of(&self, host: &str) -> Option<Arc<Map>>;
}
#[derive(Clone)]
pub struct Scope {
    pub vars: Arc<Map>,
    pub hostvars: Option<Arc<dyn HostVars>>,
}
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub message: String,
    pub undefined: Option<String>,
}
pub struct Templar;
impl Default for Templar {
    fn default() -> Self {
        Templar
    }
}
impl Templar {
    pub fn new() -> Self {
        Templar
    }
    pub fn template_value(&self, v: &Value, _s: &Scope) -> Result<Value, TemplateError> {
        Ok(v.clone())
    }
    pub fn template_str(&self, v: &str, _s: &Scope) -> Result<Value, TemplateError> {
        Ok(Value::String(v.into()))
    }
    pub fn eval_bool(&self, _e: &str, _s: &Scope) -> Result<bool, TemplateError> {
        Ok(true)
    }
    pub fn eval_expr(&self, e: &str, _s: &Scope) -> Result<Value, TemplateError> {
        Ok(Value::String(e.into()))
    }
    pub fn render_file(&self, src: &str, _p: &Path, _s: &Scope) -> Result<String, TemplateError> {
        Ok(src.into())
    }
}
