//! Node.js and the package manager, installed side by side: the Node.js download (42–53 MB)
//! runs on a thread of its own while the package manager's version list arrives and the tool
//! is installed, and on a warm rebuild the two version lists (the only network traffic)
//! arrive together. Each side prints its log lines as it goes, so theirs may interleave.

use crate::errors::NodejsBuildpackError;
use crate::layers::{runtime, tool};
use crate::package_json::PackageJson;
use crate::package_manager::PackageManager;
use crate::registry::Registry;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use std::thread::ScopedJoinHandle;

pub struct Installed {
    pub node: runtime::Installed,
    pub tool: tool::Installed,
}

impl Installed {
    /// The engine exports once the buildpack exits: the layers' early compression must be
    /// done by then.
    pub fn wait_for_compression(self) {
        self.node.compressing.wait();
        self.tool.compressing.wait();
    }
}

/// Resolve and install Node.js and the package manager; the tool's version is picked to suit
/// Node's.
pub fn install_node_and_tool(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    package_json: &PackageJson,
    package_manager: &PackageManager,
) -> libcnb::Result<Installed, NodejsBuildpackError> {
    std::thread::scope(|scope| {
        let tool_versions = scope.spawn(|| tool::versions(registry, package_manager.tool));
        let release = runtime::resolve(context, registry, package_json)?;
        let node_version = release.semver.clone();
        let node = scope.spawn(|| runtime::install(context, registry, release));
        let tool = joined(tool_versions)
            .map_err(libcnb::Error::from)
            .and_then(|versions| {
                tool::install(context, registry, package_manager, &versions, &node_version)
            });
        // Node's failure is the one reported when both fail: it is the first step.
        let node = joined(node)?;
        Ok(Installed { node, tool: tool? })
    })
}

/// A thread's outcome; a panic there goes on here.
fn joined<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
