//! The build host as CNB targets describe it, read from `/etc/os-release` (`CNB_TARGET_*`),
//! and whether a buildpack's `[[targets]]` accept it
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md#targets-1>).

use libcnb_data::buildpack::BuildpackTarget;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub os: String,
    pub arch: String,
    pub distro_name: String,
    pub distro_version: String,
}

impl Target {
    pub fn host() -> Self {
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let fields = parse_os_release(&release);
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Target {
            os: std::env::consts::OS.to_string(),
            arch: arch.to_string(),
            distro_name: fields.get("ID").cloned().unwrap_or_default(),
            distro_version: fields.get("VERSION_ID").cloned().unwrap_or_default(),
        }
    }

    /// The stack name written into the manifest, e.g. `debian-12`.
    pub fn stack_name(&self) -> String {
        if self.distro_name.is_empty() {
            self.os.clone()
        } else {
            format!("{}-{}", self.distro_name, self.distro_version)
        }
    }

    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            ("CNB_TARGET_OS", self.os.clone()),
            ("CNB_TARGET_ARCH", self.arch.clone()),
            ("CNB_TARGET_DISTRO_NAME", self.distro_name.clone()),
            ("CNB_TARGET_DISTRO_VERSION", self.distro_version.clone()),
        ]
    }
}

/// A field a target leaves out, or the host does not know, matches anything (the lifecycle's
/// `TargetSatisfiedForBuild`).
fn matches(host: &str, wanted: Option<&str>) -> bool {
    match wanted {
        None | Some("") => true,
        Some(w) => host.is_empty() || host == w,
    }
}

impl Target {
    /// True when `wanted` accepts this host: `os`, `arch` and `variant` match, and one of its
    /// `distros` (if any) does; a host without a known distro matches no `distros`. The host
    /// has no arch variant.
    pub fn satisfies(&self, wanted: &BuildpackTarget) -> bool {
        matches(&self.os, wanted.os.as_deref())
            && matches(&self.arch, wanted.arch.as_deref())
            && matches("", wanted.variant.as_deref())
            && (wanted.distros.is_empty()
                || !self.distro_name.is_empty()
                    && wanted.distros.iter().any(|d| {
                        matches(&self.distro_name, Some(&d.name))
                            && matches(&self.distro_version, Some(&d.version))
                    }))
    }

    /// The host as the detect report shows it: `linux/amd64 debian 12`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{}", self.os, self.arch);
        if !self.distro_name.is_empty() {
            s.push_str(&format!(" {} {}", self.distro_name, self.distro_version));
        }
        s
    }
}

/// A buildpack target as the detect report shows it: `linux/arm64 ubuntu 22.04`, `*` for
/// a field left out.
pub fn describe_target(t: &BuildpackTarget) -> String {
    let mut s = format!(
        "{}/{}",
        t.os.as_deref().unwrap_or("*"),
        t.arch.as_deref().unwrap_or("*")
    );
    if let Some(v) = &t.variant {
        s.push_str(&format!("/{v}"));
    }
    if !t.distros.is_empty() {
        let d: Vec<String> = t
            .distros
            .iter()
            .map(|d| format!("{} {}", d.name, d.version))
            .collect();
        s.push_str(&format!(" {}", d.join(" or ")));
    }
    s
}

fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_quoted_and_bare_values() {
        let f = super::parse_os_release("ID=debian\nVERSION_ID=\"12\"\nNAME='Debian'\n");
        assert_eq!(f["ID"], "debian");
        assert_eq!(f["VERSION_ID"], "12");
        assert_eq!(f["NAME"], "Debian");
    }
}
