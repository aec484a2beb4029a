// The devDependencies prune of slugc/nodejs for Yarn 2, 3 and 4, loaded through YARN_PLUGINS
// for that one command. `yarn workspaces focus --all --production` does the same but needs the
// workspace-tools plugin on Yarn 2 and 3, which is fetched from GitHub.
//
// Every workspace loses its devDependencies in memory only; the install then relinks the
// project (node_modules, or .pnp.cjs and .yarn/unplugged) without writing package.json or
// yarn.lock back. With SLUGC_YARN_CACHE_CLEANUP=1 the zips that no production package needs
// are removed from the cache folder (when it is inside the project), as a normal install does.
// Build scripts do not run again (`skip-build`, Yarn 3+; like Yarn 1's and pnpm's prune with
// --ignore-scripts): what they built is kept, and they may need the devDependencies just
// removed (node-gyp itself, say).
module.exports = {
  name: "@slugc/plugin-prune",
  factory: (require) => {
    const { BaseCommand } = require("@yarnpkg/cli");
    const { Cache, Configuration, Project, StreamReport } = require("@yarnpkg/core");

    class PruneCommand extends BaseCommand {
      async execute() {
        const configuration = await Configuration.find(this.context.cwd, this.context.plugins);
        const { project } = await Project.find(configuration, this.context.cwd);
        const cache = await Cache.find(configuration);
        await project.restoreInstallState({ restoreResolutions: false });
        for (const workspace of project.workspaces) {
          workspace.manifest.devDependencies.clear();
        }
        const report = await StreamReport.start(
          { configuration, stdout: this.context.stdout, includeLogs: true },
          async (report) => {
            await project.install({ cache, report, persistProject: false, mode: "skip-build" });
            if (process.env.SLUGC_YARN_CACHE_CLEANUP === "1") {
              await project.cacheCleanup({ cache, report });
            }
          },
        );
        return report.exitCode();
      }
    }
    // Clipanion 3 (Yarn 3, 4) reads `paths`; clipanion 2 (Yarn 2) registers through addPath.
    PruneCommand.paths = [["slugc-prune"]];
    if (typeof PruneCommand.addPath === "function") {
      PruneCommand.addPath("slugc-prune");
    }
    return { commands: [PruneCommand] };
  },
};
