//! How an app starts when its Procfile has no `web`: the start command the app's own files
//! state, or the default of the framework it uses, always with where it came from.
//!
//! Two kinds of rules, each a table in its module, tried in order:
//!
//! - [`platform`]: files written for another platform (`app.json`, `render.yaml`,
//!   `railway.json`/`railway.toml`, `fly.toml`, a `Dockerfile`'s `CMD`). They are the user's
//!   own statement of how the app starts, so the engine applies them over the buildpacks'
//!   defaults, and under the Procfile.
//! - framework defaults per language ([`python`], [`node`]), which the built-in buildpacks
//!   use for their default `web` process, reading the declared dependencies and the app's
//!   files.
//!
//! Nothing here edits a file of the app: a server that would listen on a port the app
//! hard-codes is told `$PORT` through its own flag or environment variable ([`port`]).
//! A file that cannot be read or parsed gives no inference and a [`Warning`], never an error:
//! an app with a broken `render.yaml` still builds with its Procfile or its framework default.

pub mod deps;
pub mod node;
pub mod platform;
pub mod port;
pub mod python;
mod scan;
#[cfg(test)]
mod test_app;

use serde::Serialize;

/// The launch label a built-in buildpack sets to say where its default process came from
/// (`<prefix><type>` = source); the engine moves it into the release's `process_sources`.
pub const SOURCE_LABEL_PREFIX: &str = "org.slugc.process-source.";

/// One inferred process: its type, the command (run by `bash -c`, so `$PORT` expands), and
/// where it came from, as the log and `slug detect --json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inferred {
    pub process_type: String,
    pub command: String,
    pub source: String,
}

impl Inferred {
    /// The CNB launch config that makes this the default process, run by `bash -c` so that
    /// `$PORT` expands, with its source as the launch label the engine reads
    /// ([`SOURCE_LABEL_PREFIX`]).
    pub fn launch(&self) -> libcnb_data::launch::Launch {
        use libcnb_data::launch::{Label, LaunchBuilder, ProcessBuilder, ProcessType};
        let mut launch = LaunchBuilder::new();
        if let Ok(process_type) = self.process_type.parse::<ProcessType>() {
            launch.process(
                ProcessBuilder::new(process_type, ["bash", "-c", self.command.as_str()])
                    .default(true)
                    .build(),
            );
            launch.label(Label {
                key: format!("{SOURCE_LABEL_PREFIX}{}", self.process_type),
                value: self.source.clone(),
            });
        }
        launch.build()
    }
}

impl std::fmt::Display for Inferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}   (from {})",
            self.process_type,
            slugc_fs::input::clip(&self.command),
            self.source
        )
    }
}

/// Something about the app that keeps a rule from applying, or that the user should fix:
/// the file it is about (relative to the app) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub file: String,
    pub message: String,
}

impl Warning {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Warning {
            file: file.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// What a set of rules found: the processes of the first rule that applied, what later
/// rules would have given (shown by `slug doctor`, never used), and the warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inference {
    pub processes: Vec<Inferred>,
    pub unused: Vec<Inferred>,
    pub warnings: Vec<Warning>,
}

impl Inference {
    pub fn web(&self) -> Option<&Inferred> {
        self.processes.iter().find(|p| p.process_type == "web")
    }
}

/// A process type name as the Procfile takes it (`^[A-Za-z0-9_-]{1,63}$`).
pub fn valid_type_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inferred_web_launches_by_bash_as_the_default_with_its_source_label() {
        let web = Inferred {
            process_type: "web".into(),
            command: "gunicorn app:app --bind 0.0.0.0:$PORT".into(),
            source: "Flask: app.py defines app".into(),
        };
        let launch = web.launch();
        let [process] = launch.processes.as_slice() else {
            panic!("{launch:?}");
        };
        assert!(process.default);
        assert_eq!(process.r#type.to_string(), "web");
        assert_eq!(
            process.command,
            ["bash", "-c", "gunicorn app:app --bind 0.0.0.0:$PORT"]
        );
        assert_eq!(launch.labels[0].key, "org.slugc.process-source.web");
        assert_eq!(launch.labels[0].value, "Flask: app.py defines app");
    }
}
