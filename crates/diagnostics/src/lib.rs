//! Warnings that name the fix: what a build or a run found that will probably keep the app
//! from starting, and the one change that fixes it. The engine prints them at build time and
//! in `slug test` failures (`warning: …` at column 0); `slug doctor` gathers the ones that
//! need no build through each buildpack's `diagnose::warnings(app_dir)`.
//!
//! The text is the contract with the user: say what is wrong, where, and the change to make.

use std::fmt;

/// What a warning is about, so that a caller can tell them apart without parsing the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The start command runs a binary that only a pruned devDependency provides.
    PrunedDevBinary,
    /// The web process listens on a port other than `$PORT` (Heroku's R10).
    WrongPort,
    /// An installed Python package needs something the environment lacks (see the Python
    /// buildpack's table of known issues).
    PythonKnownIssue,
    /// The runtime line asked for is end-of-life.
    EndOfLife,
    /// The Python line was chosen to fit the app's pinned wheels, or could not be.
    PythonWheelFit,
    /// A file that says how the app starts (`render.yaml`, `fly.toml`, a `Dockerfile`, …)
    /// could not be read or used; the message names it.
    StartCommand,
}

/// One warning: its rule and the sentence shown to the user (without the `warning: `).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub rule: Rule,
    pub message: String,
}

impl Warning {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    /// The log line: `warning: <message>`, which the engine prints at column 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.message)
    }
}

/// The start of every warning line. The engine's build log prints lines that start with it
/// at column 0 (other buildpack lines are indented), so that they stand out.
pub const PREFIX: &str = "warning: ";

/// The fix for an end-of-life runtime line, the same words for every runtime, to end the
/// message that says which line was asked for and where: the nearest supported line and the
/// one-line change. `nearest` is the line (`22.x`), `change` the line to write
/// (`"engines": {"node": "22.x"}`).
pub fn nearest_supported(nearest: &str, change: &str) -> String {
    format!("the nearest supported line is {nearest}: change it to {change}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_one_line_starting_with_the_prefix() {
        let w = Warning::new(
            Rule::WrongPort,
            "web listens on port 3000, not $PORT (5006)",
        );
        assert_eq!(
            w.to_string(),
            "warning: web listens on port 3000, not $PORT (5006)"
        );
    }

    #[test]
    fn the_end_of_life_fix_names_the_line_and_the_change() {
        assert_eq!(
            nearest_supported("22.x", "\"engines\": {\"node\": \"22.x\"}"),
            "the nearest supported line is 22.x: change it to \"engines\": {\"node\": \"22.x\"}"
        );
    }
}
