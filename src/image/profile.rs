//! The launch environment of a slug as absolute values for the image config's `Env`.
//!
//! A slug's launch env lives in `.profile.d/*.sh` scripts written relative to `$HOME` (the
//! app root at run time, as `slug run` does). The image's launcher sources them
//! at start, so the container always sees the real env; `Env` in the config is for the tools
//! that read it without running anything (`podman inspect`, `podman run --entrypoint …`,
//! orchestrators showing env). It is computed here by expanding, with `HOME=/app`, the plain
//! `export NAME=WORD` lines and the one-line `if [ -n/-z WORD ]; then export …; else export …;
//! fi` that the engine writes for prepend/append/default env files. A line using anything
//! else (command substitution, other tests, functions such as exec.d) is left to the launcher,
//! and what it exports is dropped from `Env` rather than guessed.

use std::collections::BTreeMap;

/// Apply the `export` lines of one script to `env` (which holds the base image's env and
/// `HOME`). Variables whose value cannot be computed are removed from `env`.
pub fn apply_script(script: &str, env: &mut BTreeMap<String, String>) {
    for raw in script.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let understood = match conditional(line) {
            Some((test, then, otherwise)) => match eval_test(test, env) {
                Some(true) => export(then, env),
                Some(false) => otherwise.is_none_or(|cmd| export(cmd, env)),
                None => false,
            },
            None => export(line, env),
        };
        if !understood {
            // Whatever this line sets is unknown here: drop it rather than keep a stale value.
            for name in exported_names(line) {
                env.remove(name);
            }
        }
    }
}

/// Apply one `export NAME=WORD`; false when the line is not one or the word cannot be
/// expanded.
fn export(cmd: &str, env: &mut BTreeMap<String, String>) -> bool {
    let Some(assign) = cmd.trim().strip_prefix("export ") else {
        return false;
    };
    let Some((name, value)) = assign.trim_start().split_once('=') else {
        return false;
    };
    if !valid_name(name) {
        return false;
    }
    match expand_word(value, env) {
        Some(v) => {
            env.insert(name.to_string(), v);
            true
        }
        None => false,
    }
}

/// The one-line conditionals the engine writes for append/prepend/default env files:
/// `if [ TEST ]; then export …; else export …; fi` (the `else` part optional).
fn conditional(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = line.strip_prefix("if [ ")?;
    let (test, rest) = rest.split_once(" ]; then ")?;
    let body = rest.strip_suffix("; fi")?;
    match body.split_once("; else ") {
        Some((then, otherwise)) => Some((test, then, Some(otherwise))),
        None => Some((test, body, None)),
    }
}

/// `-n WORD` / `-z WORD`.
fn eval_test(test: &str, env: &BTreeMap<String, String>) -> Option<bool> {
    let (op, word) = test.split_once(' ')?;
    let value = expand_word(word, env)?;
    match op {
        "-n" => Some(!value.is_empty()),
        "-z" => Some(value.is_empty()),
        _ => None,
    }
}

fn exported_names(line: &str) -> impl Iterator<Item = &str> {
    line.split("export ").skip(1).filter_map(|rest| {
        let name = rest.split('=').next()?;
        valid_name(name).then_some(name)
    })
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Expand one shell word made of bare, `'single'` and `"double"` quoted parts, with `$NAME`,
/// `${NAME}`, `${NAME:-word}` and `${NAME:+word}`. `None` for anything else.
fn expand_word(word: &str, env: &BTreeMap<String, String>) -> Option<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\'' => {
                let end = chars[i + 1..].iter().position(|&c| c == '\'')? + i + 1;
                out.extend(&chars[i + 1..end]);
                i = end + 1;
            }
            '"' => {
                i += 1;
                loop {
                    match *chars.get(i)? {
                        '"' => break,
                        '\\' => {
                            let next = *chars.get(i + 1)?;
                            if matches!(next, '"' | '\\' | '$' | '`') {
                                out.push(next);
                            } else {
                                out.push('\\');
                                out.push(next);
                            }
                            i += 2;
                        }
                        '$' => i = expand_dollar(&chars, i, env, &mut out)?,
                        '`' => return None,
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '$' => i = expand_dollar(&chars, i, env, &mut out)?,
            '\\' => {
                out.push(*chars.get(i + 1)?);
                i += 2;
            }
            // Unquoted whitespace or operators: more than one word or command.
            c if c.is_whitespace() || ";&|<>()`".contains(c) => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Expand the parameter starting at `chars[i] == '$'`; returns the index after it.
fn expand_dollar(
    chars: &[char],
    i: usize,
    env: &BTreeMap<String, String>,
    out: &mut String,
) -> Option<usize> {
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    match chars.get(i + 1) {
        Some('{') => {
            let close = matching_brace(chars, i + 2)?;
            let inner: String = chars[i + 2..close].iter().collect();
            let name_len = inner.chars().take_while(is_name).count();
            let (name, rest) = inner.split_at(name_len);
            if !valid_name(name) {
                return None;
            }
            let value = env.get(name).filter(|v| !v.is_empty());
            let set = env.contains_key(name);
            if rest.is_empty() {
                out.push_str(value.map(String::as_str).unwrap_or(""));
            } else if let Some(word) = rest.strip_prefix(":-") {
                match value {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&expand_word(&format!("\"{word}\""), env)?),
                }
            } else if let Some(word) = rest.strip_prefix(":+") {
                if value.is_some() {
                    out.push_str(&expand_word(&format!("\"{word}\""), env)?);
                }
            } else if let Some(word) = rest.strip_prefix('+') {
                if set {
                    out.push_str(&expand_word(&format!("\"{word}\""), env)?);
                }
            } else if let Some(word) = rest.strip_prefix('-') {
                match env.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&expand_word(&format!("\"{word}\""), env)?),
                }
            } else {
                return None;
            }
            Some(close + 1)
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let len = chars[i + 1..].iter().take_while(|c| is_name(c)).count();
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(env.get(&name).map(String::as_str).unwrap_or(""));
            Some(i + 1 + len)
        }
        // `$(`, `$1`, `$?` …: not a plain variable.
        _ => None,
    }
}

fn matching_brace(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 1;
    for (offset, &c) in chars[from..].iter().enumerate() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(from + offset);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("HOME".to_string(), "/app".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ])
    }

    #[test]
    fn home_relative_paths_become_absolute() {
        let mut env = base();
        apply_script(
            "# generated\nexport PATH=\"$HOME/.layers/slugc_python/runtime/bin:$PATH\"\n\
             export PYTHONHOME=\"${HOME}/.layers/slugc_python/runtime\"\nexport LANG='C.UTF-8'\n",
            &mut env,
        );
        assert_eq!(
            env["PATH"],
            "/app/.layers/slugc_python/runtime/bin:/usr/bin:/bin"
        );
        assert_eq!(env["PYTHONHOME"], "/app/.layers/slugc_python/runtime");
        assert_eq!(env["LANG"], "C.UTF-8");
    }

    #[test]
    fn default_and_alternative_forms() {
        let mut env = base();
        apply_script(
            "export LD_LIBRARY_PATH=\"$HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n\
             export WEB_CONCURRENCY=\"${WEB_CONCURRENCY:-2}\"\nexport Q=\"a \\\"b\\\" \\$c\"\n",
            &mut env,
        );
        assert_eq!(env["LD_LIBRARY_PATH"], "/app/lib");
        assert_eq!(env["WEB_CONCURRENCY"], "2");
        assert_eq!(env["Q"], "a \"b\" $c");
    }

    /// The shape `slug build` writes (see an engine-built slug's `000-slugc-launch.sh`).
    #[test]
    fn engine_conditionals_for_prepend_and_default() {
        let mut env = base();
        apply_script(
            "if [ -n \"${PATH:-}\" ]; then export PATH=\"$HOME\"'/.layers/p/bin'':'\"$PATH\"; else export PATH=\"$HOME\"'/.layers/p/bin'; fi\n\
             if [ -n \"${LD_LIBRARY_PATH:-}\" ]; then export LD_LIBRARY_PATH=\"$HOME\"'/lib'':'\"$LD_LIBRARY_PATH\"; else export LD_LIBRARY_PATH=\"$HOME\"'/lib'; fi\n\
             if [ -z \"${LANG+x}\" ]; then export LANG='C.UTF-8'; fi\n\
             if [ -z \"${HOME+x}\" ]; then export HOME='/nowhere'; fi\n\
             export VIRTUAL_ENV=\"$HOME\"'/.layers/p/venv'\n",
            &mut env,
        );
        assert_eq!(env["PATH"], "/app/.layers/p/bin:/usr/bin:/bin");
        assert_eq!(env["LD_LIBRARY_PATH"], "/app/lib");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["HOME"], "/app");
        assert_eq!(env["VIRTUAL_ENV"], "/app/.layers/p/venv");
    }

    #[test]
    fn what_cannot_be_computed_is_dropped_not_guessed() {
        let mut env = base();
        env.insert("X".into(), "old".into());
        apply_script(
            "export X=\"$(cat /etc/x)\"\nexport Y=`date`\nexport Z=a b\nif true; then :; fi\n\
             if [ -f /x ]; then export PATH=/x; fi\n",
            &mut env,
        );
        assert!(!env.contains_key("X"));
        assert!(!env.contains_key("Y"));
        assert!(!env.contains_key("Z"));
        assert!(
            !env.contains_key("PATH"),
            "set by a test it cannot evaluate"
        );
    }
}
