//! One strict parse of the body into a [`serde_json::Value`].
//!
//! Why not `serde_json::from_slice::<Value>`: it keeps the *last* of duplicate member names,
//! and attribute names are case-insensitive (RFC 7643 §2.1), so `{"userName":"a","UserName":"b"}`
//! or a repeated `"op"` could mean one thing to the gate and another to the upstream. A gate
//! must not have a parser differential, so any duplicate (ignoring ASCII case) is a 400.
//!
//! Nesting is bounded explicitly ([`MAX_DEPTH`], `docs/scim-checks.md` "Limits on input"): the
//! checks, the PUT comparison and the drop of the tree all recurse once per level, so the
//! input must not decide how deep. A deeper body is a 400 that says so.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::Rejection;

/// The deepest nesting of arrays and objects accepted. SCIM bodies are a handful of levels
/// deep (a Bulk operation's PATCH value is five); serde_json's own limit (128) is the backstop.
pub(crate) const MAX_DEPTH: usize = 64;

/// Parse a request body: UTF-8 JSON, one object, no duplicate member names, at most
/// [`MAX_DEPTH`] levels.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, Rejection> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Strict { depth: 0 }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Rejection::invalid_json(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(Rejection::invalid_json("the body must be a JSON object"));
    }
    Ok(v)
}

/// One value at `depth` levels of nesting (the body itself is at 0).
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Strict {
    /// The seed of a member or element; an error once the nesting passes [`MAX_DEPTH`].
    fn child<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

/// Below this many members a linear scan beats hashing lower-cased copies.
const LINEAR_SCAN: usize = 16;

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut out = Map::new();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let dup = match &mut seen {
                Some(set) => !set.insert(key.to_ascii_lowercase()),
                None => {
                    let dup = out.keys().any(|k| k.eq_ignore_ascii_case(&key));
                    if out.len() + 1 >= LINEAR_SCAN {
                        seen = Some(
                            out.keys()
                                .map(|k| k.to_ascii_lowercase())
                                .chain(std::iter::once(key.to_ascii_lowercase()))
                                .collect(),
                        );
                    }
                    dup
                }
            };
            if dup {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name '{key}' (names are case-insensitive)"
                )));
            }
            let v = map.next_value_seed(child)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Case-insensitive member lookup (RFC 7643 §2.1). Bodies are duplicate-free, so the first
/// match is the only one.
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    match obj.get(name) {
        Some(v) => Some(v),
        None => obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v),
    }
}

/// The actual key spelling of `name` in `obj`, for mutable access and removal.
pub(crate) fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// RFC 7643 §2.5: `null`, a missing attribute and `[]` all mean "unassigned".
pub(crate) fn unassigned(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}
