//! The evaluation context's attributes, read through a borrowed view: each
//! edge (the Evaluate proto, flagd's Struct, OFREP's JSON) adapts its own
//! decoded request without copying it, and the engine allocates nothing.

use crate::print::Print;

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

    /// [`Self::get`] for a name compiled into a clause.
    fn get_named(&self, name: &AttrName) -> Option<Attr<'_>> {
        self.get(name.as_str())
    }

    /// A member of nested objects (`$.user.name`: member `name` of the
    /// object `user`). The default reads one-segment paths only: a source
    /// without objects has no members.
    fn get_path(&self, path: &[Box<str>]) -> Option<Attr<'_>> {
        match path {
            [name] => self.get(name),
            _ => None,
        }
    }

    /// Calls `visit` with every attribute [`Self::get`] would return, and
    /// says whether it could (the default cannot list them).
    fn visit<'s>(&'s self, visit: &mut dyn FnMut(&'s str, Attr<'s>)) -> bool {
        let _ = visit;
        false
    }

    /// These attributes when already gathered, so that the engine does
    /// not gather them again.
    fn gathered(&self) -> Option<&Gathered<'_>> {
        None
    }
}

/// A context without attributes.
pub struct NoAttributes;

impl Attributes for NoAttributes {
    fn get(&self, _: &str) -> Option<Attr<'_>> {
        None
    }

    fn visit<'s>(&'s self, _: &mut dyn FnMut(&'s str, Attr<'s>)) -> bool {
        true
    }
}

/// An attribute name with its [`Print`], computed once when a clause is
/// compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrName {
    name: Box<str>,
    print: Print,
}

impl AttrName {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            print: Print::of(name),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

/// A context's attributes gathered once per request, for the engine's
/// lookups: up to [`Gathered::CAPACITY`] of them in an array on the stack,
/// found by their [`Print`] (most names without a byte compare, where an
/// ordered map compares bytes with several names per lookup). A context
/// with more attributes, or one that cannot list them, is read in place.
pub struct Gathered<'a> {
    entries: arrayvec::ArrayVec<Entry<'a>, { Gathered::CAPACITY }>,
    /// The context itself, when its attributes were not gathered.
    source: Option<&'a dyn Attributes>,
    /// The context, for paths into its objects (never gathered).
    origin: &'a dyn Attributes,
}

struct Entry<'a> {
    print: Print,
    name: &'a str,
    attr: Attr<'a>,
}

impl<'a> Gathered<'a> {
    pub const CAPACITY: usize = 16;

    /// Runs `then` with `source`'s attributes gathered (read in place when
    /// it cannot list them or they do not fit). The array stays in this
    /// call's frame: returning it would copy all of it.
    pub fn gather<R>(source: &'a dyn Attributes, then: impl FnOnce(&Gathered<'a>) -> R) -> R {
        let mut gathered = Gathered {
            entries: arrayvec::ArrayVec::new(),
            source: None,
            origin: source,
        };
        let mut overflowed = false;
        let listed = source.visit(&mut |name, attr| {
            let entry = Entry {
                print: Print::of(name),
                name,
                attr,
            };
            overflowed |= gathered.entries.try_push(entry).is_err();
        });
        if !listed || overflowed {
            gathered.entries.clear();
            gathered.source = Some(source);
        }
        then(&gathered)
    }

    /// The attribute a clause names.
    #[inline(always)]
    pub(crate) fn named(&self, name: &AttrName) -> Option<Attr<'a>> {
        match self.source {
            Some(source) => source.get_named(name),
            None => self.find(name.print, &name.name),
        }
    }

    #[inline(always)]
    fn find(&self, print: Print, name: &str) -> Option<Attr<'a>> {
        for entry in &self.entries {
            if entry.print == print && (print.is_whole() || entry.name == name) {
                return Some(entry.attr);
            }
        }
        None
    }
}

impl Attributes for Gathered<'_> {
    fn get(&self, name: &str) -> Option<Attr<'_>> {
        match self.source {
            Some(source) => source.get(name),
            None => self.find(Print::of(name), name),
        }
    }

    fn get_named(&self, name: &AttrName) -> Option<Attr<'_>> {
        self.named(name)
    }

    fn get_path(&self, path: &[Box<str>]) -> Option<Attr<'_>> {
        self.origin.get_path(path)
    }

    fn gathered(&self) -> Option<&Gathered<'_>> {
        Some(self)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(&'s str, Attr<'s>)) -> bool {
        match self.source {
            Some(source) => source.visit(visit),
            None => {
                for entry in &self.entries {
                    visit(entry.name, entry.attr);
                }
                true
            }
        }
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

    fn get_path(&self, path: &[Box<str>]) -> Option<Attr<'_>> {
        let (last, objects) = path.split_last()?;
        let mut object = self;
        for segment in objects {
            object = object.get(&**segment)?.as_object()?;
        }
        object.get(&**last).and_then(json_attr)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(&'s str, Attr<'s>)) -> bool {
        for (name, value) in self {
            if let Some(attr) = json_attr(value) {
                visit(name, attr);
            }
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(attr: Option<Attr<'_>>) -> Option<String> {
        attr.map(|attr| format!("{attr:?}"))
    }

    /// Every name a gathered context is asked for answers as the context
    /// itself does: present or not, short or long (names past 16 bytes that
    /// share their first and last 8), in contexts that fit and that do not.
    #[test]
    fn gathered_contexts_answer_as_the_context_does() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "plan",
            "email",
            "country",
            "app_version",
            "0123456789abcdef",
            "prefix__XXX__suffix",
            "prefix__YYY__suffix",
            "prefix__suffix",
        ];
        for count in [0, 1, 5, Gathered::CAPACITY, Gathered::CAPACITY + 1, 40] {
            let context: serde_json::Map<String, serde_json::Value> = (0..count)
                .map(|i| {
                    let name = names.get(i).map_or(format!("extra_{i}"), |n| n.to_string());
                    (name, serde_json::json!(i))
                })
                .collect();
            Gathered::gather(&context, |gathered| {
                assert_eq!(gathered.source.is_some(), count > Gathered::CAPACITY);
                for name in
                    names
                        .iter()
                        .copied()
                        .chain(["missing", "extra_20", "prefix__ZZZ__suffix"])
                {
                    let expected = text(Attributes::get(&context, name));
                    assert_eq!(text(gathered.get(name)), expected, "{name:?} of {count}");
                    assert_eq!(
                        text(gathered.get_named(&AttrName::new(name))),
                        expected,
                        "{name:?} of {count}"
                    );
                }
            });
        }
    }

    /// A context that cannot list its attributes is read in place.
    #[test]
    fn unlisted_contexts_are_read_in_place() {
        struct One;
        impl Attributes for One {
            fn get(&self, name: &str) -> Option<Attr<'_>> {
                (name == "plan").then_some(Attr::Str("enterprise"))
            }
        }
        Gathered::gather(&One, |gathered| {
            assert!(gathered.source.is_some());
            assert_eq!(
                text(gathered.get_named(&AttrName::new("plan"))),
                Some("\"enterprise\"".into())
            );
            assert_eq!(text(gathered.get("other")), None);
        });
    }

    /// `$.user.name` reads member `name` of the object `user`, gathered or
    /// not; a plain name with a dot is one attribute, as always.
    #[test]
    fn paths_read_nested_objects() {
        let context = serde_json::json!({
            "user": {"name": "jack", "team": {"id": 7}},
            "user.role": "admin",
            "plan": "pro",
        });
        let context = context.as_object().expect("an object");
        let path = |text: &str| -> Vec<Box<str>> { text.split('.').map(Box::from).collect() };
        Gathered::gather(context, |gathered| {
            assert!(gathered.source.is_none(), "gathered as usual");
            for (at, expected) in [
                ("user.name", Some("\"jack\"")),
                ("user.team.id", Some("7")),
                ("plan", Some("\"pro\"")),
                ("user", None),
                ("user.role", None),
                ("user.missing", None),
                ("plan.length", None),
                ("user.name.first", None),
            ] {
                let expected = expected.map(str::to_owned);
                assert_eq!(text(gathered.get_path(&path(at))), expected, "{at}");
            }
            assert_eq!(text(gathered.get("user.name")), None);
            assert_eq!(text(gathered.get("user.role")), Some("\"admin\"".into()));
        });
    }
}
