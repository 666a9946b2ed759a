//! An evaluation context as it arrives (`google.protobuf.Struct`), read by
//! the engine in place: no copy of its names or strings.

use vexil_engine::{Attr, AttrList, Attributes, ValidationError};

use crate::google::protobuf::{ListValue, Struct, Value, value::Kind};

/// Limits on a request's context (the README lists them).
pub mod limits {
    /// Most attributes in a context.
    pub const ATTRIBUTES: usize = 100;
    /// Longest attribute name, in bytes.
    pub const NAME_BYTES: usize = 256;
    /// Longest string value, in bytes.
    pub const STRING_BYTES: usize = 4096;
    /// Most elements in a list value.
    pub const LIST_ITEMS: usize = 100;
}

fn attr(value: &Value) -> Option<Attr<'_>> {
    match value.kind.as_ref()? {
        Kind::StringValue(text) => Some(Attr::Str(text)),
        Kind::NumberValue(number) => Some(Attr::Num(*number)),
        Kind::BoolValue(value) => Some(Attr::Bool(*value)),
        Kind::ListValue(list) => Some(Attr::List(list)),
        Kind::NullValue(_) | Kind::StructValue(_) => None,
    }
}

impl Attributes for Struct {
    fn get(&self, name: &str) -> Option<Attr<'_>> {
        self.fields.get(name).and_then(attr)
    }

    fn get_path(&self, path: &[Box<str>]) -> Option<Attr<'_>> {
        let (last, objects) = path.split_last()?;
        let mut object = self;
        for segment in objects {
            object = match object.fields.get(&**segment)?.kind.as_ref()? {
                Kind::StructValue(inner) => inner,
                _ => return None,
            };
        }
        object.fields.get(&**last).and_then(attr)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(&'s str, Attr<'s>)) -> bool {
        for (name, value) in &self.fields {
            if let Some(attr) = attr(value) {
                visit(name, attr);
            }
        }
        true
    }
}

impl AttrList for ListValue {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn item(&self, index: usize) -> Option<Attr<'_>> {
        match attr(self.values.get(index)?)? {
            Attr::List(_) => None,
            item => Some(item),
        }
    }
}

/// Checks a request's context against [`limits`], naming `field` (and the
/// attribute) in the error.
pub fn validate(field: &str, context: &Struct) -> Result<(), ValidationError> {
    if context.fields.len() > limits::ATTRIBUTES {
        return Err(ValidationError::new(
            field,
            format!("must hold at most {} attributes", limits::ATTRIBUTES),
        ));
    }
    for (name, value) in &context.fields {
        if name.len() > limits::NAME_BYTES {
            return Err(ValidationError::new(
                field,
                format!(
                    "attribute names must be at most {} bytes",
                    limits::NAME_BYTES
                ),
            ));
        }
        let at = || format!("{field}.{}", vexil_engine::echo(name));
        let strings = |text: &str| {
            if text.len() > limits::STRING_BYTES {
                Err(ValidationError::new(
                    at(),
                    format!("strings must be at most {} bytes", limits::STRING_BYTES),
                ))
            } else {
                Ok(())
            }
        };
        match &value.kind {
            Some(Kind::StringValue(text)) => strings(text)?,
            Some(Kind::ListValue(list)) => {
                if list.values.len() > limits::LIST_ITEMS {
                    return Err(ValidationError::new(
                        at(),
                        format!("lists must hold at most {} items", limits::LIST_ITEMS),
                    ));
                }
                for item in &list.values {
                    if let Some(Kind::StringValue(text)) = &item.kind {
                        strings(text)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
