//! The formation: which process types run, how many of each, and their ports and names.
//!
//! As foreman: every type once by default (or the types named on the command line),
//! `--scale type=N,...` overrides the count, and instance `i` (1-based) of the type at
//! `index` gets `PORT = base + 100 × index + (i − 1)`. The order of types is `web` first, then
//! the others by name, so that `web.1` is on the base port whatever else the app declares.

use std::collections::BTreeMap;

/// Upper bound on one type's count: a typo such as `web=1000` should not fork-bomb a laptop.
pub const MAX_SCALE: u32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormationError {
    #[error("--scale {0:?}: expected type=N, e.g. web=2,worker=1")]
    BadScale(String),
    #[error("--scale {entry:?}: at most {MAX_SCALE} processes of one type")]
    TooMany { entry: String },
    #[error("unknown process type {name:?}; the slug has: {known}")]
    UnknownType { name: String, known: String },
    #[error("no process to run: the formation scales every process type to 0")]
    Empty,
    #[error("the slug declares no process types (no Procfile and no buildpack process)")]
    NoProcessTypes,
    #[error("ports run past 65535 from --port {0}")]
    PortOverflow(u16),
}

/// One process to start: `web.2` with its command and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub process_type: String,
    pub number: u32,
    pub command: String,
    pub port: u16,
}

impl Instance {
    /// The dyno name, `web.1`, used for `DYNO`, `PS` and the output prefix.
    pub fn name(&self) -> String {
        format!("{}.{}", self.process_type, self.number)
    }
}

/// `web` first, then the rest by name.
pub fn ordered_types(process_types: &BTreeMap<String, String>) -> Vec<&str> {
    let mut types: Vec<&str> = Vec::with_capacity(process_types.len());
    if process_types.contains_key("web") {
        types.push("web");
    }
    types.extend(
        process_types
            .keys()
            .map(String::as_str)
            .filter(|&t| t != "web"),
    );
    types
}

/// Parse `--scale` values (each may hold several comma-separated `type=N`); later wins.
pub fn parse_scale(values: &[String]) -> Result<BTreeMap<String, u32>, FormationError> {
    let mut scale = BTreeMap::new();
    for value in values {
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, count) = entry
                .split_once('=')
                .ok_or_else(|| FormationError::BadScale(entry.to_string()))?;
            let count: u32 = count
                .trim()
                .parse()
                .map_err(|_| FormationError::BadScale(entry.to_string()))?;
            if count > MAX_SCALE {
                return Err(FormationError::TooMany {
                    entry: entry.to_string(),
                });
            }
            scale.insert(name.trim().to_string(), count);
        }
    }
    Ok(scale)
}

/// The instances to start, in start order (type order, then instance number).
pub fn plan(
    process_types: &BTreeMap<String, String>,
    named: &[String],
    scale: &BTreeMap<String, u32>,
    base_port: u16,
) -> Result<Vec<Instance>, FormationError> {
    if process_types.is_empty() {
        return Err(FormationError::NoProcessTypes);
    }
    let types = ordered_types(process_types);
    let unknown = |name: &str| FormationError::UnknownType {
        name: name.to_string(),
        known: types.join(", "),
    };
    for name in named.iter().chain(scale.keys()) {
        if !process_types.contains_key(name) {
            return Err(unknown(name));
        }
    }
    let mut instances = Vec::new();
    for (index, &t) in types.iter().enumerate() {
        let default = if named.is_empty() || named.iter().any(|n| n == t) {
            1
        } else {
            0
        };
        let count = scale.get(t).copied().unwrap_or(default);
        for number in 1..=count {
            let port = u32::from(base_port) + 100 * index as u32 + (number - 1);
            let port = u16::try_from(port).map_err(|_| FormationError::PortOverflow(base_port))?;
            instances.push(Instance {
                process_type: t.to_string(),
                number,
                command: process_types[t].clone(),
                port,
            });
        }
    }
    if instances.is_empty() {
        return Err(FormationError::Empty);
    }
    Ok(instances)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> BTreeMap<String, String> {
        [("worker", "w"), ("web", "s"), ("clock", "c")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(instances: &[Instance]) -> Vec<(String, u16)> {
        instances.iter().map(|i| (i.name(), i.port)).collect()
    }

    #[test]
    fn default_is_one_of_each_web_first() {
        let p = plan(&types(), &[], &BTreeMap::new(), 5000).unwrap();
        assert_eq!(
            names(&p),
            vec![
                ("web.1".into(), 5000),
                ("clock.1".into(), 5100),
                ("worker.1".into(), 5200)
            ]
        );
    }

    #[test]
    fn scale_and_named_types() {
        let scale = parse_scale(&["web=3, worker=1".into()]).unwrap();
        let p = plan(&types(), &["web".into()], &scale, 6000).unwrap();
        assert_eq!(
            names(&p),
            vec![
                ("web.1".into(), 6000),
                ("web.2".into(), 6001),
                ("web.3".into(), 6002),
                ("worker.1".into(), 6200)
            ]
        );
        let scale = parse_scale(&["clock=0".into()]).unwrap();
        let p = plan(&types(), &[], &scale, 5000).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            parse_scale(&["web".into()]),
            Err(FormationError::BadScale("web".into()))
        );
        assert_eq!(
            parse_scale(&["web=x".into()]),
            Err(FormationError::BadScale("web=x".into()))
        );
        assert!(matches!(
            parse_scale(&["web=101".into()]),
            Err(FormationError::TooMany { .. })
        ));
        let e = plan(&types(), &["db".into()], &BTreeMap::new(), 5000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown process type \"db\"; the slug has: web, clock, worker"
        );
        let scale = parse_scale(&["web=0,worker=0,clock=0".into()]).unwrap();
        assert_eq!(
            plan(&types(), &[], &scale, 5000),
            Err(FormationError::Empty)
        );
        assert_eq!(
            plan(&types(), &[], &BTreeMap::new(), 65500),
            Err(FormationError::PortOverflow(65500))
        );
    }
}
