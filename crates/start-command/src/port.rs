//! A command from a platform file that names a port: `$PORT` instead, through the server's
//! own flag. Render, Railway and Heroku set `$PORT`; a `Dockerfile` or `fly.toml` states the
//! port the container listens on (`EXPOSE 8000`, `internal_port = 8080`) and the command
//! hard-codes it. Only the flags of the servers below are touched, only when their value is a
//! literal (a value with `$` is the user's own choice of variable), and a server that would
//! otherwise listen on its own default port (uvicorn's 127.0.0.1:8000) is given the flags.
//! gunicorn, `next start` and Heroku-style Node servers read `$PORT` themselves.

/// A server: the program's name and the flags that set its port, `host:port` and host.
struct Server {
    program: &'static str,
    port_flags: &'static [&'static str],
    bind_flags: &'static [&'static str],
    host_flags: &'static [&'static str],
    /// Added at the end when none of its port or bind flags is given.
    when_missing: Option<&'static str>,
}

const SERVERS: &[Server] = &[
    Server {
        program: "uvicorn",
        port_flags: &["--port"],
        bind_flags: &[],
        host_flags: &["--host"],
        when_missing: Some("--host 0.0.0.0 --port $PORT"),
    },
    Server {
        program: "gunicorn",
        port_flags: &[],
        bind_flags: &["--bind", "-b"],
        host_flags: &[],
        when_missing: None,
    },
    Server {
        program: "hypercorn",
        port_flags: &[],
        bind_flags: &["--bind", "-b"],
        host_flags: &[],
        when_missing: Some("--bind 0.0.0.0:$PORT"),
    },
    Server {
        program: "daphne",
        port_flags: &["--port", "-p"],
        bind_flags: &[],
        host_flags: &["--bind", "-b"],
        when_missing: Some("--bind 0.0.0.0 --port $PORT"),
    },
    Server {
        program: "waitress-serve",
        port_flags: &["--port"],
        bind_flags: &["--listen"],
        host_flags: &["--host"],
        when_missing: Some("--listen 0.0.0.0:$PORT"),
    },
    Server {
        program: "streamlit",
        port_flags: &["--server.port"],
        bind_flags: &[],
        host_flags: &["--server.address"],
        when_missing: Some("--server.port $PORT --server.address 0.0.0.0"),
    },
    Server {
        program: "next",
        port_flags: &["--port", "-p"],
        bind_flags: &[],
        host_flags: &["--hostname", "-H"],
        when_missing: None,
    },
];

/// Hosts that only the machine itself can reach.
const LOOPBACK: &[&str] = &["127.0.0.1", "localhost", "::1", "[::1]"];

/// Tokens that end one simple command of a shell line.
const OPERATORS: &[&str] = &["&&", "||", ";", "|", "&"];

/// `command` with each hard-coded port of a known server replaced by `$PORT` (and a
/// loopback host by `0.0.0.0`), and what was changed, for the source shown to the user.
pub fn rewrite(command: &str) -> (String, Vec<String>) {
    let tokens = spans(command);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut changes = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let word = tokens[i].2;
        let program = word.rsplit('/').next().unwrap_or(word);
        let Some(server) = SERVERS.iter().find(|s| s.program == program) else {
            if program.starts_with("python")
                && tokens.get(i + 2).is_some_and(|t| t.2 == "runserver")
            {
                i = rewrite_runserver(&tokens, i + 3, &mut edits, &mut changes);
            }
            i += 1;
            continue;
        };
        let mut saw_port = false;
        let mut j = i + 1;
        while j < tokens.len() && !OPERATORS.contains(&tokens[j].2) {
            let (_, end, tok) = tokens[j];
            let (flag, inline) = match tok.split_once('=') {
                Some((f, v)) if f.starts_with('-') => (f, Some(v)),
                _ => (tok, None),
            };
            let kind = if server.port_flags.contains(&flag) {
                Some(Kind::Port)
            } else if server.bind_flags.contains(&flag) {
                Some(Kind::Bind)
            } else if server.host_flags.contains(&flag) {
                Some(Kind::Host)
            } else {
                None
            };
            if let Some(kind) = kind {
                if kind != Kind::Host {
                    saw_port = true;
                }
                let (vstart, vend, value) = match inline {
                    Some(v) => (end - v.len(), end, v),
                    None => match tokens.get(j + 1) {
                        Some(&(s, e, v)) => {
                            j += 1;
                            (s, e, v)
                        }
                        None => break,
                    },
                };
                if let Some(new) = kind.rewritten(value) {
                    changes.push(format!("{flag} {value} → {new}"));
                    edits.push((vstart, vend, new));
                }
            }
            j += 1;
        }
        if let (false, Some(extra)) = (saw_port, server.when_missing) {
            let at = tokens[j - 1].1;
            edits.push((at, at, format!(" {extra}")));
            changes.push(format!("added {extra}"));
        }
        i = j;
    }
    let mut out = command.to_string();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, new) in edits {
        out.replace_range(start..end, &new);
    }
    (out, changes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Port,
    Bind,
    Host,
}

impl Kind {
    fn rewritten(self, value: &str) -> Option<String> {
        let value = value.trim_matches(['"', '\'']);
        match self {
            Kind::Port => is_literal_port(value).then(|| "$PORT".to_string()),
            Kind::Host => LOOPBACK.contains(&value).then(|| "0.0.0.0".to_string()),
            Kind::Bind => {
                let (host, port) = value.rsplit_once(':')?;
                (is_literal_port(port) && !host.starts_with("unix"))
                    .then(|| "0.0.0.0:$PORT".to_string())
            }
        }
    }
}

fn is_literal_port(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// `manage.py runserver [addr:]port`: Django's development server, told `0.0.0.0:$PORT`.
fn rewrite_runserver(
    tokens: &[(usize, usize, &str)],
    at: usize,
    edits: &mut Vec<(usize, usize, String)>,
    changes: &mut Vec<String>,
) -> usize {
    match tokens.get(at) {
        Some(&(s, e, v)) if !v.starts_with('-') && !OPERATORS.contains(&v) => {
            let port = v.rsplit(':').next().unwrap_or(v);
            if is_literal_port(port) {
                edits.push((s, e, "0.0.0.0:$PORT".to_string()));
                changes.push(format!("runserver {v} → 0.0.0.0:$PORT"));
            }
            at
        }
        _ => {
            let end = tokens[at - 1].1;
            edits.push((end, end, " 0.0.0.0:$PORT".to_string()));
            changes.push("added 0.0.0.0:$PORT".to_string());
            at - 1
        }
    }
}

/// Whitespace-separated words with their byte spans (quotes are not parsed: a flag and its
/// value are plain words in every command this rewrites).
fn spans(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len(), &text[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(c: &str) -> String {
        rewrite(c).0
    }

    #[test]
    fn literal_ports_become_port() {
        assert_eq!(
            r("uvicorn main:app --host 0.0.0.0 --port 8000"),
            "uvicorn main:app --host 0.0.0.0 --port $PORT"
        );
        assert_eq!(
            r("uvicorn main:app --host=127.0.0.1 --port=80"),
            "uvicorn main:app --host=0.0.0.0 --port=$PORT"
        );
        assert_eq!(
            r("gunicorn -b 0.0.0.0:8080 app:app"),
            "gunicorn -b 0.0.0.0:$PORT app:app"
        );
        assert_eq!(
            r("streamlit run app.py --server.port 8501"),
            "streamlit run app.py --server.port $PORT"
        );
        assert_eq!(r("next start -p 3000"), "next start -p $PORT");
        assert_eq!(
            r("python manage.py runserver 0.0.0.0:8000"),
            "python manage.py runserver 0.0.0.0:$PORT"
        );
        assert_eq!(
            r("python manage.py migrate && python manage.py runserver"),
            "python manage.py migrate && python manage.py runserver 0.0.0.0:$PORT"
        );
    }

    #[test]
    fn missing_flags_are_added_and_variables_left_alone() {
        assert_eq!(
            r("uvicorn main:app"),
            "uvicorn main:app --host 0.0.0.0 --port $PORT"
        );
        assert_eq!(
            r("cd api && python -m uvicorn main:app && echo x"),
            "cd api && python -m uvicorn main:app --host 0.0.0.0 --port $PORT && echo x"
        );
        let same = "uvicorn main:app --host 0.0.0.0 --port ${PORT:-8000}";
        assert_eq!(rewrite(same), (same.to_string(), Vec::new()));
        let same = "gunicorn app:app";
        assert_eq!(rewrite(same), (same.to_string(), Vec::new()));
        let same = "node server.js --port 3000";
        assert_eq!(r(same), same);
        let (_, changes) = rewrite("uvicorn main:app --port 8000");
        assert_eq!(changes, ["--port 8000 → $PORT"]);
    }
}
