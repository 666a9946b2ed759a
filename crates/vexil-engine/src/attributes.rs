//! The evaluation context's attributes, read through a borrowed view: each
//! edge (the Evaluate proto, flagd's Struct, OFREP's JSON) adapts its own
//! decoded request without copying it, and the engine allocates nothing.

/// One attribute value as the engine sees it.
#[derive(Clone, Copy)]
pub enum Attr<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    /// A list: a clause matches when any element does.
    List(&'a dyn AttrList),
}

impl std::fmt::Debug for Attr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(text) => write!(f, "{text:?}"),
            Self::Num(number) => write!(f, "{number}"),
            Self::Bool(value) => write!(f, "{value}"),
            Self::List(list) => f
                .debug_list()
                .entries((0..list.len()).filter_map(|i| list.item(i)))
                .finish(),
        }
    }
}

/// A list-valued attribute.
pub trait AttrList {
    fn len(&self) -> usize;
    /// The element at `index`; `None` for elements the engine cannot
    /// compare (objects, nulls, nested lists).
    fn item(&self, index: usize) -> Option<Attr<'_>>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The attributes of an evaluation context, by name.
pub trait Attributes {
    /// The named attribute; `None` when absent or of a kind the engine
    /// cannot compare (objects, nulls).
    fn get(&self, name: &str) -> Option<Attr<'_>>;
}

/// A context without attributes.
pub struct NoAttributes;

impl Attributes for NoAttributes {
    fn get(&self, _: &str) -> Option<Attr<'_>> {
        None
    }
}

/// The engine's own reading of a JSON value (OFREP's context, the
/// evaluation vectors).
pub fn json_attr(value: &serde_json::Value) -> Option<Attr<'_>> {
    match value {
        serde_json::Value::String(text) => Some(Attr::Str(text)),
        serde_json::Value::Number(number) => number.as_f64().map(Attr::Num),
        serde_json::Value::Bool(value) => Some(Attr::Bool(*value)),
        serde_json::Value::Array(items) => Some(Attr::List(items)),
        serde_json::Value::Null | serde_json::Value::Object(_) => None,
    }
}

impl Attributes for serde_json::Map<String, serde_json::Value> {
    fn get(&self, name: &str) -> Option<Attr<'_>> {
        self.get(name).and_then(json_attr)
    }
}

impl AttrList for Vec<serde_json::Value> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn item(&self, index: usize) -> Option<Attr<'_>> {
        match self.get(index)? {
            serde_json::Value::Array(_) => None,
            other => json_attr(other),
        }
    }
}
