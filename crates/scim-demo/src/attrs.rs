//! Case-insensitive access to JSON objects. RFC 7643 §2.1: attribute names are
//! case-insensitive, so every lookup the store, the filters and PATCH make goes through these.
//! A leaf module (nothing else of the crate is imported) so both `store` and `patch` can share
//! it without depending on each other's internals.

use serde_json::{Map, Value};

/// A SCIM resource or complex attribute as a JSON object.
pub(crate) type Obj = Map<String, Value>;

pub(crate) fn get_ci<'a>(obj: &'a Obj, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

pub(crate) fn get_ci_mut<'a>(obj: &'a mut Obj, name: &str) -> Option<&'a mut Value> {
    obj.iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

pub(crate) fn remove_ci(obj: &mut Obj, name: &str) -> Option<Value> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    obj.remove(&key)
}

/// Sets `name`, keeping an existing key's spelling so `UserName` and `userName` never coexist.
pub(crate) fn set_ci(obj: &mut Obj, name: &str, value: Value) {
    entry_ci(obj, name, || Value::Null).clone_from(&value);
}

/// The value under `name` in any case, inserting `default()` under `name` when absent.
pub(crate) fn entry_ci<'a>(
    obj: &'a mut Obj,
    name: &str,
    default: impl FnOnce() -> Value,
) -> &'a mut Value {
    let key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string());
    obj.entry(key).or_insert_with(default)
}
