//! Reading a configuration file: YAML syntax, the position of every node (so each error
//! can name its line and column), and `${VAR}` / `${VAR:-default}` expansion in strings.

use super::error::InvalidValue;
use std::collections::HashMap;

use serde_yaml::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::path::{FieldPath, Seg};

/// Line and column (both 1-based).
pub type Pos = (usize, usize);

/// Which part of a node an error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The mapping key (`topic:` in `topic: x`): unknown fields.
    Key,
    /// The value: wrong types and values.
    Value,
}

/// Where every node of the document starts.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<FieldPath, (Option<Pos>, Pos)>,
}

impl Positions {
    /// Index a YAML text. Syntax errors are left to the serde parser, which reports them.
    pub fn index(text: &str) -> Self {
        let mut recv = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error only stops the indexing; the positions found so far stay useful.
        let _ = parser.load(&mut recv, false);
        Self { nodes: recv.nodes }
    }

    /// The position of `path` (or of its nearest indexed ancestor).
    pub fn locate(&self, path: &FieldPath, anchor: Anchor) -> Pos {
        let mut p = path.clone();
        loop {
            if let Some((key, value)) = self.nodes.get(&p) {
                return match anchor {
                    Anchor::Key if p == *path => key.unwrap_or(*value),
                    _ => *value,
                };
            }
            if p.is_root() {
                return (1, 1);
            }
            p = p.parent();
        }
    }
}

enum Frame {
    Map {
        path: FieldPath,
        key: Option<(String, Pos)>,
        /// No key seen yet: a block mapping's start mark is after its first key, so the
        /// first key's position is the better start.
        first: bool,
    },
    Seq {
        path: FieldPath,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    nodes: HashMap<FieldPath, (Option<Pos>, Pos)>,
}

fn pos(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based and columns 0-based.
    (m.line(), m.col() + 1)
}

impl Recorder {
    /// Where a new node goes: its path and the position of its key, if in a mapping.
    /// Returns `None` for a mapping key (recorded as pending instead).
    fn place(&mut self, scalar: Option<&str>, at: Pos) -> Option<(FieldPath, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((FieldPath::root(), None)),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                Some((p, None))
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                Some((k, key_pos)) => Some((path.key(k), Some(key_pos))),
                None => {
                    // A key. Complex (non-scalar) keys are not used by Sluice configs.
                    *key = Some((scalar.unwrap_or("?").to_string(), at));
                    if std::mem::take(first) {
                        if let Some(node) = self.nodes.get_mut(path) {
                            node.1 = node.1.min(at);
                        }
                    }
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(&mark);
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some((p, key)) = self.place(Some(s), at) {
                    self.nodes.insert(p, (key, at));
                }
            }
            Event::Alias(_) => {
                if let Some((p, key)) = self.place(None, at) {
                    self.nodes.insert(p, (key, at));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let (path, key) = self
                    .place(None, at)
                    .unwrap_or_else(|| (FieldPath::root().key("?"), None));
                self.nodes.insert(path.clone(), (key, at));
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        first: true,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Expand `${VAR}` and `${VAR:-default}` in `s`; `$${` is a literal `${`.
pub fn expand_env(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InvalidValue> {
    expand_env_tracked(s, lookup)
        .map(|(v, _)| v)
        .map_err(InvalidValue)
}

/// [`expand_env`], also returning the variables whose `:-default` was used (unset or
/// empty).
fn expand_env_tracked(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(s.len());
    let mut defaulted = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match (lookup(name), default) {
                (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                (_, Some(d)) => {
                    out.push_str(d);
                    defaulted.push(name.to_string());
                }
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"
                    ))
                }
                (Some(v), None) => out.push_str(&v),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, defaulted))
}

/// True for a field holding a credential: `password`, `secret`, `secrets[]`,
/// `token_keys[]`, the `key` of a consumer's credential block, `admin.token`, and properties named `*.password` /
/// `*.secret`. Such a field never takes a `${VAR:-default}` fallback (a default
/// credential is one every copy of the file shares), and the admin API redacts it.
pub fn is_credential(path: &FieldPath) -> bool {
    let keys: Vec<&str> = path
        .0
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        ["consumers", _, "key"] | ["admin", "token"] => true,
        [.., last] => {
            matches!(*last, "password" | "secret" | "secrets" | "token_keys")
                // librdkafka pass-through properties: sasl.password, ssl.key.password,
                // sasl.oauthbearer.client.secret, ...
                || last.ends_with(".password")
                || last.ends_with(".secret")
        }
        [] => false,
    }
}

/// Replace every credential in `value` (found at `path`) with `"<redacted>"`.
pub fn redact(value: &mut Value, path: &FieldPath) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let p = path.key(k.as_str().unwrap_or_default());
                if is_credential(&p) && !v.is_null() {
                    *v = Value::String("<redacted>".into());
                } else {
                    redact(v, &p);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                redact(v, &path.index(i));
            }
        }
        Value::Tagged(t) => redact(&mut t.value, path),
        _ => {}
    }
}

/// Expand environment variables in every string value of `value` (keys are left alone).
/// Returns the paths and messages of the strings that could not be expanded.
pub fn expand_tree(
    value: &mut Value,
    path: &FieldPath,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(FieldPath, String)>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand_env_tracked(s, lookup) {
            Ok((_, defaulted)) if !defaulted.is_empty() && is_credential(path) => errors.push((
                path.clone(),
                format!(
                    "a credential never falls back to a default: set `{}`",
                    defaulted.join("`, `")
                ),
            )),
            Ok((v, _)) => *s = v,
            Err(e) if is_credential(path) => {
                // No "use a default" hint for a credential.
                let e = e.split(" (use `").next().unwrap_or(&e).to_string();
                errors.push((path.clone(), format!("{e} (a credential has no default)")));
            }
            Err(e) => errors.push((path.clone(), e)),
        },
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand_tree(v, &path.index(i), lookup, errors);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default(),
                };
                expand_tree(v, &path.key(key), lookup, errors);
            }
        }
        Value::Tagged(t) => expand_tree(&mut t.value, path, lookup, errors),
        _ => {}
    }
}

/// The key of a mapping entry as a path segment.
pub fn key_seg(k: &Value) -> Seg {
    match k {
        Value::String(s) => Seg::Key(s.clone()),
        other => Seg::Key(
            serde_yaml::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand_env("${HOST}:9092", &env).unwrap(), "kafka-1:9092");
        assert_eq!(expand_env("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(expand_env("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand_env("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand_env("a$${HOST}b", &env).unwrap(), "a${HOST}b");
        assert_eq!(expand_env("cost $5", &env).unwrap(), "cost $5");
        assert!(expand_env("${NOPE}", &env)
            .unwrap_err()
            .0
            .contains("`NOPE` is not set"));
        assert!(expand_env("${BAD-NAME}", &env).is_err());
        assert!(expand_env("${OPEN", &env).is_err());
    }

    #[test]
    fn credentials_never_take_a_default() {
        let yaml = "consumers:\n  - key-auth: { key: \"${NOPE:-change-me-123}\" }\n    jwt-auth: { secret: \"${HOST:-x}\" }\nkafka: { sasl: { password: \"${NOPE:-pw}\" }, properties: { sasl.password: \"${NOPE:-pw}\", ssl.key.location: \"${NOPE:-k.pem}\" } }\nsubs: { secrets: [\"${EMPTY:-whsec_x}\"] }\ntls: { key: \"${NOPE:-conf/tls/example.key}\" }\n";
        let mut v: Value = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        expand_tree(&mut v, &FieldPath::root(), &env, &mut errors);
        let paths: Vec<String> = errors.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            paths,
            [
                "consumers[0].key-auth.key",
                "kafka.sasl.password",
                "kafka.properties.sasl.password",
                "subs.secrets[0]"
            ]
        );
        assert!(errors[0].1.contains("set `NOPE`"), "{}", errors[0].1);
        // A set variable is used; a key file path may have a default.
        assert_eq!(v["consumers"][0]["jwt-auth"]["secret"], "kafka-1");
        assert_eq!(v["tls"]["key"], "conf/tls/example.key");
    }

    #[test]
    fn indexes_keys_and_values() {
        let text = "server:\n  threads: 2\nroutes:\n  - id: a\n    match: { paths: [\"/x\"] }\n";
        let p = Positions::index(text);
        let threads = FieldPath::root().key("server").key("threads");
        assert_eq!(p.locate(&threads, Anchor::Key), (2, 3));
        assert_eq!(p.locate(&threads, Anchor::Value), (2, 12));
        let path0 = FieldPath::root()
            .key("routes")
            .index(0)
            .key("match")
            .key("paths")
            .index(0);
        assert_eq!(p.locate(&path0, Anchor::Value), (5, 22));
        // Unknown paths fall back to the nearest ancestor.
        let missing = FieldPath::root().key("routes").index(0).key("nope");
        assert_eq!(p.locate(&missing, Anchor::Key), (4, 5));
    }
}
