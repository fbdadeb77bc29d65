//! Typed decoding of one configuration node that reports *every* unknown field, not only
//! the first: serde stops at the first error, so an unknown field is recorded, removed
//! from a copy of the node, and decoding is retried. Any other error ends the node.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::path::{FieldPath, Seg};
use super::source::{key_seg, Anchor};

/// An error at a path, before it is given a file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where (absolute path in the document).
    pub path: FieldPath,
    /// Which part of the node the error points at.
    pub anchor: Anchor,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error about the value at `path`.
    pub fn value(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            anchor: Anchor::Value,
            message: message.into(),
        }
    }

    /// An error about the key at `path` (e.g. an unknown name).
    pub fn key(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            anchor: Anchor::Key,
            message: message.into(),
        }
    }
}

const MAX_ROUNDS: usize = 64;

/// Decode `value` (found at `at`) into `T`, collecting all unknown fields and the first
/// other error.
pub fn decode<T: DeserializeOwned>(value: &Value, at: &FieldPath) -> Result<T, Vec<FieldError>> {
    let mut work = value.clone();
    let mut errors = Vec::new();
    for _ in 0..MAX_ROUNDS {
        match serde_path_to_error::deserialize::<_, T>(work.clone()) {
            Ok(v) if errors.is_empty() => return Ok(v),
            Ok(_) => return Err(errors),
            Err(e) => {
                let rel = convert_path(e.path());
                let message = e.inner().to_string();
                if let Some(field) = unknown_field(&message) {
                    // serde_path_to_error reports the path of the mapping that holds the
                    // unknown key; some versions include the key itself.
                    let holder = match rel.0.last() {
                        Some(Seg::Key(k)) if k == field => rel.parent(),
                        _ => rel,
                    };
                    let path = at.join(&holder).key(field);
                    errors.push(FieldError::key(path, clean(&message)));
                    if !remove_key(&mut work, &holder, field) {
                        return Err(errors);
                    }
                } else {
                    errors.push(FieldError::value(at.join(&rel), clean(&message)));
                    return Err(errors);
                }
            }
        }
    }
    Err(errors)
}

fn convert_path(p: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    FieldPath(
        p.iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect(),
    )
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// serde messages mention Rust-isms; make them read as config errors.
fn clean(message: &str) -> String {
    message
        .replace("invalid type: ", "wrong type: ")
        .replace("unit value", "nothing (null)")
}

fn remove_key(root: &mut Value, holder: &FieldPath, field: &str) -> bool {
    let mut node = root;
    for seg in &holder.0 {
        node = match (seg, node) {
            (Seg::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Key(k), Value::Mapping(map)) => {
                match map
                    .iter_mut()
                    .find(|(mk, _)| key_seg(mk) == Seg::Key(k.clone()))
                {
                    Some((_, v)) => v,
                    None => return false,
                }
            }
            (_, Value::Tagged(t)) => &mut t.value,
            _ => return false,
        };
    }
    match node {
        Value::Mapping(map) => map.remove(field).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        #[serde(default)]
        list: Vec<Inner>,
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn reports_every_unknown_field() {
        let v = yaml("inner: {a: 1, x: 2, y: 3}\nlist: [{a: 1, z: 1}]\nextra: true\n");
        let errs = decode::<Outer>(&v, &FieldPath::root().key("top")).unwrap_err();
        let paths: Vec<String> = errs.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(
            paths,
            ["top.inner.x", "top.inner.y", "top.list[0].z", "top.extra"]
        );
        assert!(errs.iter().all(|e| e.anchor == Anchor::Key));
        assert!(errs[0].message.starts_with("unknown field `x`, expected"));
    }

    #[test]
    fn reports_type_errors_with_path() {
        let v = yaml("inner: {a: nope}\n");
        let errs = decode::<Outer>(&v, &FieldPath::root()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path.to_string(), "inner.a");
        assert!(
            errs[0].message.contains("wrong type"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn decodes_valid_input() {
        let v = yaml("inner: {a: 7}\n");
        let o = decode::<Outer>(&v, &FieldPath::root()).unwrap();
        assert_eq!(o.inner.a, 7);
    }
}
