//! Parsing module arguments the way Ansible coerces them, into each module's typed struct.
//!
//! Ansible users write `create: yes`, `mode: 0644`, `port: "8080"` and `name: a,b`; Ansible's
//! argument spec converts them to the declared type. `parse` does the same through a lenient
//! serde `Deserializer` over the JSON arguments: the target type asks for a bool, an integer,
//! a string or a list and gets one if the value can be read as it. Unknown arguments are
//! refused with Ansible's message and the nearest supported name.

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::{did_you_mean, Map, ModuleError, Value};

/// Deserialize `args` into `T` with Ansible's coercions. Keys starting with `_` are internal
/// (`_raw_params`, `_uses_shell`) and only accepted when `T` declares them.
pub fn parse<T: DeserializeOwned>(module: &str, args: &Map) -> Result<T, ModuleError> {
    let lenient = Lenient {
        value: Value::Object(args.clone()),
        module,
        field: None,
    };
    T::deserialize(lenient).map_err(|e: ArgError| ModuleError::Args(e.0))
}

/// The argument names an `...Args` struct accepts (aliases included), so the engine can
/// refuse a misspelt argument when the playbook loads, before anything runs.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// Ansible's truth values for booleans given as strings or numbers.
pub fn ansible_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" | "1.0" => Some(true),
            "no" | "off" | "0" | "false" | "n" | "f" | "0.0" | "" => Some(false),
            _ => None,
        },
        Value::Null => Some(false),
        _ => None,
    }
}

/// A string as Ansible's `str` type renders a value: numbers and booleans as Python prints them.
pub fn ansible_str(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Debug)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ArgError {}
impl de::Error for ArgError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        ArgError(msg.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        ArgError(format!("missing required arguments: {field}"))
    }
}

struct Lenient<'m> {
    value: Value,
    module: &'m str,
    /// The argument this value belongs to, for error messages.
    field: Option<String>,
}

impl<'m> Lenient<'m> {
    fn type_error(&self, wanted: &str) -> ArgError {
        match &self.field {
            Some(f) => ArgError(format!(
                "argument '{f}' is of type {} and we were unable to convert to {wanted}",
                json_type(&self.value)
            )),
            None => ArgError(format!("value {} is not {wanted}", short(&self.value))),
        }
    }
    fn entries(map: Map, module: &'m str) -> impl Iterator<Item = (String, Lenient<'m>)> {
        map.into_iter().map(move |(k, v)| {
            let field = Some(k.clone());
            (
                k,
                Lenient {
                    value: v,
                    module,
                    field,
                },
            )
        })
    }
    fn items(
        items: Vec<Value>,
        module: &'m str,
        field: Option<String>,
    ) -> impl Iterator<Item = Lenient<'m>> {
        items.into_iter().map(move |v| Lenient {
            value: v,
            module,
            field: field.clone(),
        })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

macro_rules! lenient_int {
    ($name:ident, $visit:ident, $ty:ty) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
            let n: Option<$ty> = match &self.value {
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|i| <$ty>::try_from(i).ok())
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as $ty)),
                Value::String(s) => s.trim().parse::<$ty>().ok(),
                Value::Bool(b) => Some(<$ty>::from(*b)),
                _ => None,
            };
            match n {
                Some(n) => visitor.$visit(n),
                None => Err(self.type_error("an integer")),
            }
        }
    };
}

impl<'de, 'm> de::Deserializer<'de> for Lenient<'m> {
    type Error = ArgError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(de::value::SeqDeserializer::new(
                Lenient::items(items, self.module, self.field),
            )),
            Value::Object(map) => visitor.visit_map(de::value::MapDeserializer::new(
                Lenient::entries(map, self.module),
            )),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match ansible_bool(&self.value) {
            Some(b) => visitor.visit_bool(b),
            None => Err(ArgError(format!(
                "argument '{}' is of type {} and we were unable to convert to bool: The value {} is not a valid boolean. Valid booleans include: 'yes', 'no', 'true', 'false', 'on', 'off', '1', '0'",
                self.field.as_deref().unwrap_or("?"),
                json_type(&self.value),
                short(&self.value)
            ))),
        }
    }

    lenient_int!(deserialize_i8, visit_i8, i8);
    lenient_int!(deserialize_i16, visit_i16, i16);
    lenient_int!(deserialize_i32, visit_i32, i32);
    lenient_int!(deserialize_i64, visit_i64, i64);
    lenient_int!(deserialize_u8, visit_u8, u8);
    lenient_int!(deserialize_u16, visit_u16, u16);
    lenient_int!(deserialize_u32, visit_u32, u32);
    lenient_int!(deserialize_u64, visit_u64, u64);

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        let f = match &self.value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match f {
            Some(f) => visitor.visit_f64(f),
            None => Err(self.type_error("a number")),
        }
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match ansible_str(&self.value) {
            Some(s) => visitor.visit_string(s),
            None => Err(self.type_error("a string")),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_string(visitor)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// Ansible's `list` type also takes a comma-separated string or a single scalar.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        let items = match self.value {
            Value::Array(items) => items,
            Value::String(s) if s.contains(',') => s
                .split(',')
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        };
        visitor.visit_seq(de::value::SeqDeserializer::new(Lenient::items(
            items,
            self.module,
            self.field,
        )))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        let module = self.module;
        let map = match self.value {
            Value::Object(map) => map,
            other => {
                return Err(Lenient {
                    value: other,
                    module,
                    field: self.field,
                }
                .type_error("a mapping"))
            }
        };
        // The module's own argument struct (named `...Args`) gets Ansible's unknown-argument message.
        if name.ends_with("Args") {
            let unknown: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| !fields.contains(k))
                .collect();
            if !unknown.is_empty() {
                let mut supported: Vec<&str> = fields
                    .iter()
                    .copied()
                    .filter(|f| !f.starts_with('_'))
                    .collect();
                supported.sort_unstable();
                let mut msg = format!(
                    "Unsupported parameters for ({module}) module: {}. Supported parameters include: {}.",
                    unknown.join(", "),
                    supported.join(", ")
                );
                if let Some(near) = did_you_mean(unknown[0], supported.iter().copied()) {
                    msg.push_str(&format!(" Did you mean '{near}'?"));
                }
                return Err(ArgError(msg));
            }
        }
        visitor.visit_map(de::value::MapDeserializer::new(Lenient::entries(
            map, module,
        )))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.value {
            Value::Object(map) => visitor.visit_map(de::value::MapDeserializer::new(
                Lenient::entries(map, self.module),
            )),
            Value::Null => visitor.visit_map(de::value::MapDeserializer::new(Lenient::entries(
                Map::new(),
                self.module,
            ))),
            _ => Err(self.type_error("a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        match ansible_str(&self.value) {
            Some(s) if variants.contains(&s.as_str()) => visitor.visit_enum(s.into_deserializer()),
            Some(s) => Err(ArgError(format!(
                "value of {} must be one of: {}, got: {s}",
                self.field.as_deref().unwrap_or("argument"),
                variants.join(", ")
            ))),
            None => Err(self.type_error("a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit_struct tuple tuple_struct identifier ignored_any
    }
}

impl<'de, 'm> IntoDeserializer<'de, ArgError> for Lenient<'m> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct DemoArgs {
        #[serde(alias = "dest")]
        path: String,
        #[serde(default)]
        create: bool,
        mode: Option<Value>,
        port: Option<u16>,
        #[serde(default)]
        names: Vec<String>,
        state: Option<State>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum State {
        Present,
        Absent,
    }

    fn args(v: Value) -> Map {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn coerces_like_ansible() {
        let a: DemoArgs = parse(
            "demo",
            &args(serde_json::json!({"path": 12, "create": "yes", "mode": 420, "port": "8080", "names": "a, b", "state": "absent"})),
        )
        .expect("parses");
        assert_eq!(a.path, "12");
        assert!(a.create);
        assert_eq!(a.port, Some(8080));
        assert_eq!(a.names, vec!["a", "b"]);
        assert_eq!(a.state, Some(State::Absent));
    }

    #[test]
    fn unknown_arguments_get_ansibles_message_and_a_suggestion() {
        let err = parse::<DemoArgs>(
            "demo",
            &args(serde_json::json!({"path": "/x", "crate": true})),
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "Unsupported parameters for (demo) module: crate. Supported parameters include: create, dest, mode, names, path, port, state. Did you mean 'create'?"
        );
    }

    #[test]
    fn field_names_include_aliases() {
        let names = field_names::<DemoArgs>();
        assert!(
            names.contains(&"path") && names.contains(&"dest") && names.contains(&"state"),
            "{names:?}"
        );
    }

    #[test]
    fn aliases_are_accepted() {
        let a: DemoArgs =
            parse("demo", &args(serde_json::json!({"dest": "/x"}))).expect("alias accepted");
        assert_eq!(a.path, "/x");
    }

    #[test]
    fn missing_and_bad_values_are_clear() {
        let err = parse::<DemoArgs>("demo", &Map::new()).expect_err("refused");
        assert_eq!(err.to_string(), "missing required arguments: path");
        let err = parse::<DemoArgs>(
            "demo",
            &args(serde_json::json!({"path": "/x", "create": "maybe"})),
        )
        .expect_err("refused");
        assert!(err.to_string().contains("is not a valid boolean"), "{err}");
    }
}
