//! `vexil import --format flagd`: flagd flag-definition files read into a
//! [`Document`], so the usual plan and apply follow. Targeting in the
//! JSONLogic subset that maps onto Vexil's rules becomes ordered rules
//! (the first that matches decides, as flagd's `if` chain does);
//! `fractional` becomes a split with flagd's own bucketing, so every user
//! keeps the variant flagd served. Anything outside the subset is refused
//! with the JSON pointer of its node (docs/cli.md lists the subset and
//! where answers can still differ).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use vexil_engine::{
    Bucketing, Clause, ClauseValue, FlagName, FlagSpec, FlagType, Operator, PATH, Serve, Split,
    TargetingRule, USER_ID, Value as FlagValue, Variant, WeightedVariant,
};

use crate::document::Document;
use crate::failure::{Failure, Kind};

/// Reads flagd files (`(name, text)` pairs) into one document; every
/// error from every file at once, each with its file and JSON pointer.
pub fn read(files: &[(String, String)]) -> Result<Document, Failure> {
    let mut errors = Vec::new();
    let mut flags: Vec<(String, FlagSpec)> = Vec::new();
    for (file, text) in files {
        for entry in read_file(text) {
            match entry {
                Ok((name, spec)) if flags.iter().any(|(seen, _)| *seen == name) => {
                    errors.push(format!(
                        "{file}: {}: defined in an earlier file too",
                        pointer(&["flags", &name])
                    ));
                    drop(spec);
                }
                Ok(flag) => flags.push(flag),
                Err(error) => errors.push(format!("{file}: {error}")),
            }
        }
    }
    if !errors.is_empty() {
        return Err(Failure::new(
            Kind::Invalid,
            format!(
                "{} error(s), nothing applied:\n  {}",
                errors.len(),
                errors.join("\n  ")
            ),
        ));
    }
    let mut document = Document {
        flags,
        segments: Vec::new(),
    };
    document.sort();
    Ok(document)
}

type Entry = Result<(String, FlagSpec), String>;

fn read_file(text: &str) -> Vec<Entry> {
    // flagd reads JSON and YAML files alike.
    let root: Value = match crate::output::parse_data(text) {
        Ok(root) => root,
        Err(err) => return vec![Err(err)],
    };
    let Value::Object(root) = root else {
        return vec![Err("/: must be a JSON object".into())];
    };
    let mut entries = Vec::new();
    for key in root.keys() {
        if !["$schema", "flags", "$evaluators", "metadata"].contains(&key.as_str()) {
            entries.push(Err(format!("{}: unknown key", pointer(&[key]))));
        }
    }
    let empty = Map::new();
    let evaluators = match root.get("$evaluators") {
        None => &empty,
        Some(Value::Object(evaluators)) => evaluators,
        Some(_) => return vec![Err("/$evaluators: must be an object".into())],
    };
    let file_metadata = match root.get("metadata") {
        None => &empty,
        Some(Value::Object(metadata)) => metadata,
        Some(_) => return vec![Err("/metadata: must be an object".into())],
    };
    let Some(Value::Object(flags)) = root.get("flags") else {
        return vec![Err("/flags: required, an object".into())];
    };
    for (key, definition) in flags {
        entries.push(flag(key, definition, evaluators, file_metadata));
    }
    entries
}

/// One flag: its variants, state, default and targeting.
fn flag(
    key: &str,
    definition: &Value,
    evaluators: &Map<String, Value>,
    file_metadata: &Map<String, Value>,
) -> Entry {
    let at = |rest: &[&str]| {
        let mut path = vec!["flags", key];
        path.extend_from_slice(rest);
        pointer(&path)
    };
    FlagName::parse("name", key.to_owned())
        .map_err(|err| format!("{}: not a Vexil flag name: {}", at(&[]), err.message))?;
    let Value::Object(definition) = definition else {
        return Err(format!("{}: must be an object", at(&[])));
    };
    for field in definition.keys() {
        if ![
            "state",
            "variants",
            "defaultVariant",
            "targeting",
            "metadata",
        ]
        .contains(&field.as_str())
        {
            return Err(format!("{}: unknown field", at(&[field])));
        }
    }
    let enabled = match definition.get("state").and_then(Value::as_str) {
        Some("ENABLED") => true,
        Some("DISABLED") => false,
        _ => {
            return Err(format!(
                "{}: must be \"ENABLED\" or \"DISABLED\"",
                at(&["state"])
            ));
        }
    };
    let (flag_type, variants, names) = variants(definition.get("variants"), &at(&["variants"]))?;
    let default = match definition.get("defaultVariant") {
        Some(Value::String(name)) => match names.get(name) {
            Some(mapped) => mapped.clone(),
            None => {
                return Err(format!(
                    "{}: names no variant: {name:?}",
                    at(&["defaultVariant"])
                ));
            }
        },
        _ => {
            return Err(format!(
                "{}: required (Vexil flags serve a default variant; flagd's \
                 \"code default\" has no equivalent)",
                at(&["defaultVariant"])
            ));
        }
    };
    let mut metadata = file_metadata.clone();
    match definition.get("metadata") {
        None => {}
        Some(Value::Object(own)) => metadata.extend(own.clone()),
        Some(_) => return Err(format!("{}: must be an object", at(&["metadata"]))),
    }
    let mut targeting = Targeting {
        key,
        evaluators,
        names: &names,
        default: default.clone(),
        rules: Vec::new(),
        fallthrough: None,
    };
    match definition.get("targeting") {
        None | Some(Value::Null) => {}
        Some(Value::Object(logic)) if logic.is_empty() => {}
        Some(logic) => targeting.result(logic, &at(&["targeting"]), &vec![Vec::new()], 0)?,
    }
    let fallthrough = targeting.fallthrough.unwrap_or(Serve::Variant(default));
    let spec = FlagSpec {
        enabled,
        flag_type,
        variants,
        metadata,
        rules: targeting.rules,
        fallthrough: Some(fallthrough),
        ..FlagSpec::default()
    };
    spec.validate("flag")
        .map_err(|err| format!("{}: does not fit Vexil's limits: {err}", at(&[])))?;
    Ok((key.to_owned(), spec))
}

/// Each flagd variant's Vexil name.
type VariantNames = BTreeMap<String, String>;

/// The flag's type, Vexil's variants, and each flagd variant's Vexil name
/// (boolean flags' variants are Vexil's `on` and `off`, by value).
fn variants(
    variants: Option<&Value>,
    at: &str,
) -> Result<(FlagType, Vec<Variant>, VariantNames), String> {
    let Some(Value::Object(variants)) = variants else {
        return Err(format!("{at}: required, an object"));
    };
    if variants.is_empty() {
        return Err(format!("{at}: needs at least one variant"));
    }
    let kind = |value: &Value| match value {
        Value::Bool(_) => Some(FlagType::Boolean),
        Value::String(_) => Some(FlagType::String),
        Value::Number(n) if n.is_i64() => Some(FlagType::Int),
        Value::Number(_) => Some(FlagType::Float),
        Value::Object(_) => Some(FlagType::Object),
        _ => None,
    };
    let mut flag_type = None;
    for (name, value) in variants {
        let Some(this) = kind(value) else {
            return Err(format!(
                "{}: must be a boolean, string, number or object",
                child(at, name)
            ));
        };
        flag_type = Some(match (flag_type, this) {
            (None, this) => this,
            (Some(FlagType::Int), FlagType::Float) | (Some(FlagType::Float), FlagType::Int) => {
                FlagType::Float
            }
            (Some(seen), this) if seen == this => seen,
            (Some(seen), this) => {
                return Err(format!(
                    "{}: is {}, but an earlier variant is {}: one flag serves one type",
                    child(at, name),
                    this.name(),
                    seen.name()
                ));
            }
        });
    }
    let flag_type = flag_type.unwrap_or_default();
    if flag_type == FlagType::Boolean {
        let names = variants
            .iter()
            .map(|(name, value)| {
                let mapped = if value.as_bool() == Some(true) {
                    vexil_engine::ON
                } else {
                    vexil_engine::OFF
                };
                (name.clone(), mapped.to_owned())
            })
            .collect();
        return Ok((flag_type, Vec::new(), names));
    }
    let mut converted = Vec::with_capacity(variants.len());
    for (name, value) in variants {
        let value = match (flag_type, value) {
            (FlagType::String, Value::String(text)) => FlagValue::String(text.clone()),
            (FlagType::Int, Value::Number(n)) => FlagValue::Int(n.as_i64().unwrap_or_default()),
            (FlagType::Float, Value::Number(n)) => FlagValue::Float(n.as_f64().unwrap_or_default()),
            (_, Value::Object(object)) => FlagValue::Object(object.clone()),
            _ => return Err(format!("{}: unexpected value", child(at, name))),
        };
        converted.push(Variant {
            name: name.clone(),
            value,
            description: String::new(),
        });
    }
    let names = variants
        .keys()
        .map(|name| (name.clone(), name.clone()))
        .collect();
    Ok((flag_type, converted, names))
}

/// Conditions in disjunctive normal form: any conjunction of clauses.
type Dnf = Vec<Vec<Clause>>;

/// Most conjunctions one condition may expand to (an `and` of `or`s
/// multiplies), and most `$ref`s followed in a row.
const MOST_CONJUNCTIONS: usize = 64;
const MOST_REFS: usize = 16;

/// One flag's targeting, translated into ordered rules.
struct Targeting<'a> {
    key: &'a str,
    evaluators: &'a Map<String, Value>,
    names: &'a VariantNames,
    default: String,
    rules: Vec<TargetingRule>,
    /// Set once a serve covers everyone left: what follows is unreachable.
    fallthrough: Option<Serve>,
}

/// Where a split's key comes from.
enum BucketKey {
    /// flagd's default: the flag's key and the targeting key.
    Targeting,
    /// `{"var": x}`: the attribute alone, or flagd's default when missing.
    Attribute(String),
    /// `{"cat": [literals…, {"var": x}]}`: a fixed prefix and the attribute.
    Prefixed(String, String),
}

impl<'a> Targeting<'a> {
    /// Serves `serve` wherever `guard` holds (after every earlier rule).
    fn emit(&mut self, guard: &Dnf, serve: Serve) {
        for clauses in guard {
            if self.fallthrough.is_some() {
                return;
            }
            if clauses.is_empty() {
                self.fallthrough = Some(serve.clone());
            } else {
                self.rules.push(TargetingRule {
                    id: String::new(),
                    description: String::new(),
                    clauses: clauses.clone(),
                    serve: serve.clone(),
                });
            }
        }
    }

    fn serve_default(&mut self, guard: &Dnf) {
        let default = Serve::Variant(self.default.clone());
        self.emit(guard, default);
    }

    /// `$ref` followed to its evaluator.
    fn resolve<'v>(&self, mut node: &'v Value, at: &str) -> Result<&'v Value, String>
    where
        'a: 'v,
    {
        for _ in 0..MOST_REFS {
            let Some(name) = single(node, "$ref") else {
                return Ok(node);
            };
            let Some(name) = name.as_str() else {
                return Err(format!("{at}: $ref must name an evaluator"));
            };
            node = self
                .evaluators
                .get(name)
                .ok_or_else(|| format!("{at}: $ref names no evaluator in $evaluators: {name:?}"))?;
        }
        Err(format!(
            "{at}: more than {MOST_REFS} $refs in a row (a cycle?)"
        ))
    }

    /// What a targeting node serves, wherever `guard` holds.
    fn result(&mut self, node: &Value, at: &str, guard: &Dnf, depth: usize) -> Result<(), String> {
        if depth > 32 {
            return Err(format!("{at}: nested too deeply"));
        }
        let node = self.resolve(node, at)?;
        match node {
            Value::Null => {
                self.serve_default(guard);
                Ok(())
            }
            Value::String(name) => {
                let serve = Serve::Variant(self.variant(name, at)?);
                self.emit(guard, serve);
                Ok(())
            }
            Value::Bool(value) => {
                let serve = Serve::Variant(self.variant(&value.to_string(), at)?);
                self.emit(guard, serve);
                Ok(())
            }
            Value::Object(object) if object.len() == 1 => {
                let (op, args) = object.iter().next().expect("one entry");
                let here = child(at, op);
                match op.as_str() {
                    "if" => self.if_chain(args, &here, guard, depth),
                    "fractional" => self.fractional(args, &here, guard),
                    _ => self.boolean_result(node, at, guard),
                }
            }
            _ => Err(format!(
                "{at}: expected a variant name, null, \"if\" or \"fractional\""
            )),
        }
    }

    fn if_chain(
        &mut self,
        args: &Value,
        at: &str,
        guard: &Dnf,
        depth: usize,
    ) -> Result<(), String> {
        let Value::Array(args) = args else {
            return Err(format!("{at}: must be an array"));
        };
        let mut i = 0;
        while i + 1 < args.len() {
            let condition = self.condition(&args[i], &child(at, i), 0)?;
            let branch = and(guard, &condition, at)?;
            self.result(&args[i + 1], &child(at, i + 1), &branch, depth + 1)?;
            i += 2;
        }
        match args.get(i) {
            Some(otherwise) => self.result(otherwise, &child(at, i), guard, depth + 1),
            None => {
                self.serve_default(guard);
                Ok(())
            }
        }
    }

    /// A condition used as the result: flagd serves the variant named
    /// "true" or "false", and the default when the condition is null (a
    /// missing attribute, an invalid version). Vexil's negated clause does
    /// not match a missing attribute; for versions, "false" also requires
    /// a valid one (every version is at least 0.0.0-0).
    fn boolean_result(&mut self, node: &Value, at: &str, guard: &Dnf) -> Result<(), String> {
        let (Some(yes), Some(no)) = (self.names.get("true"), self.names.get("false")) else {
            return Err(format!(
                "{at}: a condition serves the variant named \"true\" or \"false\"; this flag has no such variants"
            ));
        };
        let (yes, no) = (yes.clone(), no.clone());
        let condition = self.condition(node, at, 0)?;
        let valid: Vec<Clause> = condition
            .iter()
            .flatten()
            .filter(|used| is_semver(used.op))
            .map(|used| {
                let lowest = vec![ClauseValue::String("0.0.0-0".into())];
                clause(used.attribute.clone(), Operator::SemverGte, lowest, false)
            })
            .collect();
        let not = and(&negate(&condition, at)?, &vec![valid], at)?;
        self.emit(&and(guard, &condition, at)?, Serve::Variant(yes));
        self.emit(&and(guard, &not, at)?, Serve::Variant(no));
        self.serve_default(guard);
        Ok(())
    }

    /// The Vexil name of the flagd variant `name`.
    fn variant(&self, name: &str, at: &str) -> Result<String, String> {
        self.names
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{at}: names no variant of this flag: {name:?}"))
    }

    fn fractional(&mut self, args: &Value, at: &str, guard: &Dnf) -> Result<(), String> {
        let Value::Array(args) = args else {
            return Err(format!("{at}: must be an array"));
        };
        let (key, first) = match args.first() {
            Some(Value::Array(_)) => (BucketKey::Targeting, 0),
            Some(expression) => (self.bucket_key(expression, &child(at, 0))?, 1),
            None => return Err(format!("{at}: needs at least one distribution")),
        };
        let mut weights = Vec::new();
        for (i, distribution) in args.iter().enumerate().skip(first) {
            let here = child(at, i);
            let Value::Array(pair) = distribution else {
                return Err(format!("{here}: must be [variant, weight]"));
            };
            let variant = match pair.first() {
                Some(Value::String(name)) => self.variant(name, &child(&here, 0))?,
                Some(Value::Object(_)) => {
                    return Err(format!(
                        "{}: a computed variant name is outside the subset Vexil imports",
                        child(&here, 0)
                    ));
                }
                _ => {
                    return Err(format!(
                        "{}: must name a variant (a string)",
                        child(&here, 0)
                    ));
                }
            };
            let weight = match pair.get(1) {
                None | Some(Value::Null) => 1,
                Some(Value::Number(number)) => {
                    let Some(weight) = number.as_f64().filter(|w| w.fract() == 0.0) else {
                        return Err(format!("{}: weights are whole numbers", child(&here, 1)));
                    };
                    // flagd clamps negative weights to 0.
                    if weight > f64::from(i32::MAX) {
                        return Err(format!("{}: at most {}", child(&here, 1), i32::MAX));
                    }
                    weight.max(0.0) as u32
                }
                Some(_) => {
                    return Err(format!(
                        "{}: a computed weight is outside the subset Vexil imports",
                        child(&here, 1)
                    ));
                }
            };
            if pair.len() > 2 {
                return Err(format!("{here}: must be [variant, weight]"));
            }
            weights.push(WeightedVariant { variant, weight });
        }
        let total: u64 = weights.iter().map(|w| u64::from(w.weight)).sum();
        if total == 0 {
            // flagd's fractional answers null: the default variant.
            self.serve_default(guard);
            return Ok(());
        }
        let split = |bucket_by: &str, salt: Option<String>| {
            Serve::Split(Split {
                weights: weights.clone(),
                bucket_by: bucket_by.to_owned(),
                salt,
                bucketing: Bucketing::Flagd,
            })
        };
        let exists = |attribute: &str| Clause {
            attribute: attribute.to_owned(),
            op: Operator::Exists,
            values: Vec::new(),
            negate: false,
            case_insensitive: false,
        };
        // Without its key, flagd's fractional answers null: the default.
        let by_targeting_key = |this: &mut Self| -> Result<(), String> {
            let keyed = and(guard, &vec![vec![exists(USER_ID)]], at)?;
            this.emit(&keyed, split("", Some(this.key.to_owned())));
            Ok(())
        };
        match key {
            BucketKey::Targeting => by_targeting_key(self)?,
            BucketKey::Attribute(attribute) if attribute == USER_ID => {
                let keyed = and(guard, &vec![vec![exists(USER_ID)]], at)?;
                self.emit(&keyed, split("", Some(String::new())));
            }
            BucketKey::Attribute(attribute) => {
                let keyed = and(guard, &vec![vec![exists(&attribute)]], at)?;
                self.emit(&keyed, split(&attribute, Some(String::new())));
                // flagd buckets by the targeting key when the attribute is missing.
                by_targeting_key(self)?;
            }
            BucketKey::Prefixed(prefix, attribute) => {
                let keyed = and(guard, &vec![vec![exists(&attribute)]], at)?;
                let bucket_by = if attribute == USER_ID { "" } else { &attribute };
                self.emit(&keyed, split(bucket_by, Some(prefix)));
            }
        }
        self.serve_default(guard);
        Ok(())
    }

    /// fractional's first argument: `{"var": x}`, or `{"cat": [...]}` of
    /// fixed strings and `$flagd.flagKey` followed by one `{"var": x}`.
    fn bucket_key(&self, expression: &Value, at: &str) -> Result<BucketKey, String> {
        let expression = self.resolve(expression, at)?;
        if single(expression, "var").is_some() {
            return match self.operand(expression, at)? {
                Operand::Attribute(name) => Ok(BucketKey::Attribute(name)),
                Operand::Literal(_) => Err(format!(
                    "{at}: a fixed bucketing value puts every user in one bucket"
                )),
            };
        }
        let Some(Value::Array(parts)) = single(expression, "cat") else {
            return Err(format!(
                "{at}: the bucketing value must be {{\"var\": …}} or {{\"cat\": [fixed strings…, {{\"var\": …}}]}}"
            ));
        };
        let mut prefix = String::new();
        for (i, part) in parts.iter().enumerate() {
            let here = child(&child(at, "cat"), i);
            let last = i + 1 == parts.len();
            match (self.operand(part, &here)?, last) {
                (Operand::Literal(ClauseValue::String(text)), false) => prefix.push_str(&text),
                (Operand::Attribute(name), true) => return Ok(BucketKey::Prefixed(prefix, name)),
                _ => {
                    return Err(format!(
                        "{here}: cat must join fixed strings (or $flagd.flagKey) and end with one {{\"var\": …}}"
                    ));
                }
            }
        }
        Err(format!("{at}: cat must end with one {{\"var\": …}}"))
    }

    /// A condition as clauses in disjunctive normal form.
    fn condition(&self, node: &Value, at: &str, depth: usize) -> Result<Dnf, String> {
        if depth > 32 {
            return Err(format!("{at}: nested too deeply"));
        }
        let node = self.resolve(node, at)?;
        let (op, args) = match node {
            Value::Bool(true) => return Ok(vec![Vec::new()]),
            Value::Bool(false) => return Ok(Vec::new()),
            Value::Object(object) if object.len() == 1 => object.iter().next().expect("one entry"),
            _ => return Err(format!("{at}: expected a condition (an operator object)")),
        };
        let here = child(at, op);
        let list = |args: &Value| -> Vec<Value> {
            match args {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            }
        };
        let args = list(args);
        match op.as_str() {
            "and" | "or" => {
                if args.is_empty() {
                    return Err(format!("{here}: needs at least one condition"));
                }
                let mut result: Dnf = if op == "and" {
                    vec![Vec::new()]
                } else {
                    Vec::new()
                };
                for (i, arg) in args.iter().enumerate() {
                    let part = self.condition(arg, &child(&here, i), depth + 1)?;
                    result = if op == "and" {
                        and(&result, &part, &here)?
                    } else {
                        let mut joined = result;
                        joined.extend(part);
                        bounded(joined, &here)?
                    };
                }
                Ok(result)
            }
            "!" | "!!" => {
                let [arg] = args.as_slice() else {
                    return Err(format!("{here}: takes one condition"));
                };
                let inner = self.condition(arg, &child(&here, 0), depth + 1)?;
                if op == "!" {
                    negate(&inner, &here)
                } else {
                    Ok(inner)
                }
            }
            "==" | "===" | "!=" | "!==" => {
                let negated = op.starts_with('!');
                let (attribute, value) = self.attribute_and_value(&args, &here)?;
                Ok(vec![vec![clause(
                    attribute,
                    Operator::In,
                    vec![value],
                    negated,
                )]])
            }
            "in" => self.in_condition(&args, &here),
            "<" | "<=" | ">" | ">=" => self.comparison(op, &args, &here),
            "starts_with" | "ends_with" => {
                let operator = if op == "starts_with" {
                    Operator::StartsWith
                } else {
                    Operator::EndsWith
                };
                match (
                    args.first().map(|a| self.operand(a, &child(&here, 0))),
                    args.get(1).map(|a| self.operand(a, &child(&here, 1))),
                    args.len(),
                ) {
                    (
                        Some(Ok(Operand::Attribute(name))),
                        Some(Ok(Operand::Literal(value @ ClauseValue::String(_)))),
                        2,
                    ) => Ok(vec![vec![clause(name, operator, vec![value], false)]]),
                    _ => Err(format!("{here}: must be [{{\"var\": …}}, \"text\"]")),
                }
            }
            "sem_ver" => self.sem_ver(&args, &here),
            "fractional" => Err(format!(
                "{here}: fractional as a condition is outside the subset Vexil imports"
            )),
            other => Err(format!(
                "{here}: the operator {other:?} is outside the subset Vexil imports \
                 (if, and, or, !, ==, !=, in, <, <=, >, >=, starts_with, ends_with, sem_ver, fractional, $ref)"
            )),
        }
    }

    /// `[{"var": x}, value]` in either order.
    fn attribute_and_value(
        &self,
        args: &[Value],
        at: &str,
    ) -> Result<(String, ClauseValue), String> {
        if args.len() != 2 {
            return Err(format!("{at}: takes two arguments"));
        }
        match (
            self.operand(&args[0], &child(at, 0))?,
            self.operand(&args[1], &child(at, 1))?,
        ) {
            (Operand::Attribute(name), Operand::Literal(value))
            | (Operand::Literal(value), Operand::Attribute(name)) => Ok((name, value)),
            _ => Err(format!(
                "{at}: compares one {{\"var\": …}} with a fixed value"
            )),
        }
    }

    fn in_condition(&self, args: &[Value], at: &str) -> Result<Dnf, String> {
        if args.len() != 2 {
            return Err(format!("{at}: takes two arguments"));
        }
        // ["text", {"var": x}]: x contains the text.
        if let (Operand::Literal(value @ ClauseValue::String(_)), Value::Object(_)) =
            (self.operand(&args[0], &child(at, 0))?, &args[1])
            && let Operand::Attribute(name) = self.operand(&args[1], &child(at, 1))?
        {
            return Ok(vec![vec![clause(
                name,
                Operator::Contains,
                vec![value],
                false,
            )]]);
        }
        // [{"var": x}, [values…]]: x is one of the values.
        if let (Operand::Attribute(name), Value::Array(items)) =
            (self.operand(&args[0], &child(at, 0))?, &args[1])
        {
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match self.operand(item, &child(&child(at, 1), i))? {
                    Operand::Literal(value) => values.push(value),
                    Operand::Attribute(_) => {
                        return Err(format!(
                            "{}: must be a fixed value",
                            child(&child(at, 1), i)
                        ));
                    }
                }
            }
            return Ok(vec![vec![clause(name, Operator::In, values, false)]]);
        }
        Err(format!(
            "{at}: must be [\"text\", {{\"var\": …}}] (contains) or [{{\"var\": …}}, [values…]] (one of)"
        ))
    }

    fn comparison(&self, op: &str, args: &[Value], at: &str) -> Result<Dnf, String> {
        let number = |value: &ClauseValue, at: String| match value {
            ClauseValue::Number(_) => Ok(()),
            _ => Err(format!("{at}: Vexil compares numbers here")),
        };
        let ordered = |op: &str| match op {
            "<" => Operator::Lt,
            "<=" => Operator::Lte,
            ">" => Operator::Gt,
            _ => Operator::Gte,
        };
        // The same comparison with its arguments swapped.
        let mirrored = |op: &str| match op {
            "<" => Operator::Gt,
            "<=" => Operator::Gte,
            ">" => Operator::Lt,
            _ => Operator::Lte,
        };
        let operands: Vec<Operand> = args
            .iter()
            .enumerate()
            .map(|(i, arg)| self.operand(arg, &child(at, i)))
            .collect::<Result<_, _>>()?;
        match operands.as_slice() {
            [Operand::Attribute(name), Operand::Literal(value)] => {
                number(value, child(at, 1))?;
                Ok(vec![vec![clause(
                    name.clone(),
                    ordered(op),
                    vec![value.clone()],
                    false,
                )]])
            }
            [Operand::Literal(value), Operand::Attribute(name)] => {
                number(value, child(at, 0))?;
                Ok(vec![vec![clause(
                    name.clone(),
                    mirrored(op),
                    vec![value.clone()],
                    false,
                )]])
            }
            // JSONLogic's "between": low < x < high.
            [
                Operand::Literal(low),
                Operand::Attribute(name),
                Operand::Literal(high),
            ] => {
                number(low, child(at, 0))?;
                number(high, child(at, 2))?;
                Ok(vec![vec![
                    clause(name.clone(), mirrored(op), vec![low.clone()], false),
                    clause(name.clone(), ordered(op), vec![high.clone()], false),
                ]])
            }
            _ => Err(format!("{at}: compares one {{\"var\": …}} with numbers")),
        }
    }

    fn sem_ver(&self, args: &[Value], at: &str) -> Result<Dnf, String> {
        let [attribute, Value::String(op), Value::String(version)] = args else {
            return Err(format!(
                "{at}: must be [{{\"var\": …}}, operator, \"version\"]"
            ));
        };
        let Operand::Attribute(name) = self.operand(attribute, &child(at, 0))? else {
            return Err(format!("{}: must be a {{\"var\": …}}", child(at, 0)));
        };
        let normalized = version.strip_prefix('V').unwrap_or(version);
        let Some(core) = semver_core(normalized) else {
            return Err(format!(
                "{}: not a semantic version: {version:?}",
                child(at, 2)
            ));
        };
        let text = |text: String| vec![ClauseValue::String(text)];
        let one = |op: Operator, negate: bool| {
            Ok(vec![vec![clause(
                name.clone(),
                op,
                text(normalized.to_owned()),
                negate,
            )]])
        };
        // "^" and "~": the same major (and minor): from X.Y.0-0 up to,
        // not including, the next one's lowest pre-release.
        let range = |low: String, high: String| {
            Ok(vec![vec![
                clause(name.clone(), Operator::SemverGte, text(low), false),
                clause(name.clone(), Operator::SemverLt, text(high), false),
            ]])
        };
        match op.as_str() {
            "=" => one(Operator::SemverEq, false),
            "!=" => one(Operator::SemverEq, true),
            "<" => one(Operator::SemverLt, false),
            "<=" => one(Operator::SemverLte, false),
            ">" => one(Operator::SemverGt, false),
            ">=" => one(Operator::SemverGte, false),
            "^" => range(format!("{}.0.0-0", core.0), format!("{}.0.0-0", core.0 + 1)),
            "~" => range(
                format!("{}.{}.0-0", core.0, core.1),
                format!("{}.{}.0-0", core.0, core.1 + 1),
            ),
            other => Err(format!(
                "{}: unknown sem_ver operator {other:?} (=, !=, <, <=, >, >=, ^, ~)",
                child(at, 1)
            )),
        }
    }

    /// A `{"var": …}` (an attribute) or a fixed value.
    fn operand(&self, node: &Value, at: &str) -> Result<Operand, String> {
        let node = self.resolve(node, at)?;
        if let Some(path) = single(node, "var") {
            let path = match path {
                Value::String(path) => path,
                Value::Array(items) if items.len() == 1 && items[0].is_string() => {
                    items[0].as_str().unwrap_or_default()
                }
                _ => {
                    return Err(format!(
                        "{at}: var with a default is outside the subset Vexil imports"
                    ));
                }
            };
            return match path {
                "targetingKey" => Ok(Operand::Attribute(USER_ID.to_owned())),
                "$flagd.flagKey" => Ok(Operand::Literal(ClauseValue::String(self.key.to_owned()))),
                "" => Err(format!("{at}: var must name an attribute")),
                other if other.starts_with('$') => Err(format!(
                    "{at}: {other:?} is outside the subset Vexil imports"
                )),
                // flagd's paths into nested objects.
                path if path.contains('.') => Ok(Operand::Attribute(format!("{PATH}{path}"))),
                name => Ok(Operand::Attribute(name.to_owned())),
            };
        }
        match node {
            Value::String(text) => Ok(Operand::Literal(ClauseValue::String(text.clone()))),
            Value::Number(number) => Ok(Operand::Literal(ClauseValue::Number(
                number.as_f64().unwrap_or_default(),
            ))),
            Value::Bool(value) => Ok(Operand::Literal(ClauseValue::Bool(*value))),
            _ => Err(format!(
                "{at}: expected {{\"var\": …}} or a string, number or boolean"
            )),
        }
    }
}

enum Operand {
    Attribute(String),
    Literal(ClauseValue),
}

fn is_semver(op: Operator) -> bool {
    matches!(
        op,
        Operator::SemverEq
            | Operator::SemverLt
            | Operator::SemverLte
            | Operator::SemverGt
            | Operator::SemverGte
    )
}

fn clause(attribute: String, op: Operator, values: Vec<ClauseValue>, negate: bool) -> Clause {
    Clause {
        attribute,
        op,
        values,
        negate,
        case_insensitive: false,
    }
}

/// `node` as `{op: args}`, if it is one.
fn single<'v>(node: &'v Value, op: &str) -> Option<&'v Value> {
    match node {
        Value::Object(object) if object.len() == 1 => object.get(op),
        _ => None,
    }
}

/// Both conditions: every pairing of their conjunctions.
fn and(left: &Dnf, right: &Dnf, at: &str) -> Result<Dnf, String> {
    let mut result = Vec::with_capacity(left.len() * right.len());
    for a in left {
        for b in right {
            result.push(a.iter().chain(b).cloned().collect());
        }
    }
    bounded(result, at)
}

/// Not the condition: ¬(C₁ ∨ C₂ …) = ¬C₁ ∧ ¬C₂ …, and ¬C is any one of
/// its clauses negated.
fn negate(condition: &Dnf, at: &str) -> Result<Dnf, String> {
    let mut result: Dnf = vec![Vec::new()];
    for conjunction in condition {
        let flipped: Dnf = conjunction
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.negate = !c.negate;
                vec![c]
            })
            .collect();
        result = and(&result, &flipped, at)?;
    }
    Ok(result)
}

fn bounded(condition: Dnf, at: &str) -> Result<Dnf, String> {
    if condition.len() > MOST_CONJUNCTIONS {
        return Err(format!(
            "{at}: expands to more than {MOST_CONJUNCTIONS} rules; simplify the condition"
        ));
    }
    Ok(condition)
}

/// A version's major and minor, if it is one (the engine's parser: an
/// optional `v`, `1`, `1.2`, `1.2.3`, a pre-release or build).
fn semver_core(text: &str) -> Option<(u64, u64)> {
    let [major, minor, _] = vexil_engine::semver::Version::parse(text)?.core();
    Some((major, minor))
}

/// A JSON pointer (RFC 6901) from its segments.
fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .fold(String::new(), |at, segment| child(&at, segment))
}

fn child(at: &str, segment: impl std::fmt::Display) -> String {
    let segment = segment.to_string().replace('~', "~0").replace('/', "~1");
    format!("{at}/{segment}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn import(file: Value) -> Result<Vec<(String, FlagSpec)>, String> {
        read(&[("f.json".into(), file.to_string())])
            .map(|document| document.flags)
            .map_err(|failure| failure.to_string())
    }

    fn one(flag: Value) -> FlagSpec {
        let mut flags = import(json!({"flags": {"f": flag}})).expect("imports");
        flags.remove(0).1
    }

    fn text(rule: &TargetingRule) -> String {
        let clauses: Vec<String> = rule
            .clauses
            .iter()
            .map(|c| {
                format!(
                    "{}{} {} {}",
                    if c.negate { "!" } else { "" },
                    c.attribute,
                    c.op.name(),
                    serde_json::to_string(&c.values).unwrap_or_default()
                )
            })
            .collect();
        let serve = match &rule.serve {
            Serve::Variant(name) => name.clone(),
            Serve::Split(_) => "split".into(),
        };
        format!("{} => {serve}", clauses.join(" & "))
    }

    #[test]
    fn if_chains_become_ordered_rules() {
        let spec = one(json!({
            "state": "ENABLED", "defaultVariant": "d",
            "variants": {"a": "a", "b": "b", "d": "d"},
            "targeting": {"if": [
                {"or": [{"==": [{"var": "plan"}, "pro"]}, {"in": ["@corp.com", {"var": "email"}]}]},
                {"if": [{">=": [{"var": "age"}, 18]}, "a"]},
                {"!": {"and": [{"starts_with": [{"var": "country"}, "D"]}, {"sem_ver": [{"var": "v"}, "^", "2.1"]}]}},
                "b",
                null
            ]}
        }));
        let rules: Vec<String> = spec.rules.iter().map(text).collect();
        assert_eq!(
            rules,
            [
                r#"plan IN ["pro"] & age GTE [18.0] => a"#,
                r#"email CONTAINS ["@corp.com"] & age GTE [18.0] => a"#,
                // The nested if has no else: flagd serves the default.
                r#"plan IN ["pro"] => d"#,
                r#"email CONTAINS ["@corp.com"] => d"#,
                r#"!country STARTS_WITH ["D"] => b"#,
                r#"!v SEMVER_GTE ["2.0.0-0"] => b"#,
                r#"!v SEMVER_LT ["3.0.0-0"] => b"#,
            ]
        );
        assert_eq!(spec.fallthrough, Some(Serve::Variant("d".into())));
        assert_eq!(spec.flag_type, FlagType::String);
    }

    #[test]
    fn evaluators_are_substituted_and_booleans_map_to_on_and_off() {
        let flags = import(json!({
            "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@corp.com"]}},
            "flags": {"f": {
                "state": "DISABLED", "defaultVariant": "no",
                "variants": {"yes": true, "no": false},
                "targeting": {"if": [{"$ref": "staff"}, "yes", "no"]}
            }}
        }))
        .expect("imports");
        let spec = &flags[0].1;
        assert!(!spec.enabled);
        assert_eq!(spec.flag_type, FlagType::Boolean);
        let rules: Vec<String> = spec.rules.iter().map(text).collect();
        assert_eq!(rules, [r#"email ENDS_WITH ["@corp.com"] => on"#]);
        assert_eq!(spec.fallthrough, Some(Serve::Variant("off".into())));
    }

    #[test]
    fn fractional_keeps_flagds_bucketing_and_its_fallbacks() {
        let spec = one(json!({
            "state": "ENABLED", "defaultVariant": "a",
            "variants": {"a": 1, "b": 2.5},
            "targeting": {"fractional": [{"var": "org"}, ["a", 1], ["b", -3], ["a"]]}
        }));
        assert_eq!(spec.flag_type, FlagType::Float);
        let rules: Vec<String> = spec.rules.iter().map(text).collect();
        assert_eq!(
            rules,
            ["org EXISTS [] => split", "$user_id EXISTS [] => split"]
        );
        let Serve::Split(split) = &spec.rules[0].serve else {
            panic!("a split")
        };
        assert_eq!(split.bucketing, Bucketing::Flagd);
        assert_eq!(split.salt.as_deref(), Some(""));
        assert_eq!(split.bucket_by, "org");
        let weights: Vec<u32> = split.weights.iter().map(|w| w.weight).collect();
        assert_eq!(weights, [1, 0, 1], "negative weights are 0, missing ones 1");
        let Serve::Split(fallback) = &spec.rules[1].serve else {
            panic!("a split")
        };
        assert_eq!(fallback.salt.as_deref(), Some("f"));
        assert_eq!(spec.fallthrough, Some(Serve::Variant("a".into())));
    }

    #[test]
    fn the_rest_is_refused_with_its_json_pointer() {
        let error = import(json!({"flags": {
            "a/b": {"state": "ENABLED", "defaultVariant": "x", "variants": {"x": "x"}},
            "ok": {"state": "ENABLED", "defaultVariant": "x", "variants": {"x": "x", "y": 1}},
            "ops": {"state": "ENABLED", "defaultVariant": "x", "variants": {"x": "x"},
                "targeting": {"if": [{"and": [true, {"merge": [1]}]}, "x", null]}},
            "ghost": {"state": "ENABLED", "defaultVariant": "x", "variants": {"x": "x"},
                "targeting": {"if": [{"==": [{"var": "a"}, 1]}, "nope", "x"]}}
        }}))
        .expect_err("refused");
        for expected in [
            "4 error(s), nothing applied",
            "f.json: /flags/a~1b: not a Vexil flag name",
            "f.json: /flags/ok/variants/y: is INT, but an earlier variant is STRING",
            "f.json: /flags/ops/targeting/if/0/and/1/merge: the operator \"merge\" is outside",
            "f.json: /flags/ghost/targeting/if/1: names no variant of this flag: \"nope\"",
        ] {
            assert!(error.contains(expected), "{expected:?} in {error}");
        }
    }
}
