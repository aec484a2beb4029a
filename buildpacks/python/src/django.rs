//! Django's `collectstatic`, as Heroku runs it: when Django is installed and the app has
//! `manage.py`, unless `DISABLE_COLLECTSTATIC=1`, and skipped when the app does not use
//! `django.contrib.staticfiles`. Its failure fails the build.
//! <https://devcenter.heroku.com/articles/django-assets>

use crate::errors::PythonBuildpackError;
use crate::log;
use crate::tool_env::ToolEnv;
use std::path::Path;
use std::process::Stdio;

pub fn is_django_installed(site_packages: &Path) -> bool {
    site_packages.join("django/__init__.py").is_file()
}

/// Django's `ManagementUtility.fetch_command` for a command no installed app provides.
fn is_unknown_command(stderr: &[u8]) -> bool {
    String::from_utf8_lossy(stderr).contains("Unknown command: 'collectstatic'")
}

pub fn collectstatic(
    app_dir: &Path,
    site_packages: &Path,
    venv: &Path,
    env: &ToolEnv,
) -> Result<(), PythonBuildpackError> {
    if !app_dir.join("manage.py").is_file() || !is_django_installed(site_packages) {
        return Ok(());
    }
    if env
        .get("DISABLE_COLLECTSTATIC")
        .is_some_and(|v| v != "0" && !v.is_empty())
    {
        log::header("Skipping Django collectstatic (DISABLE_COLLECTSTATIC is set)");
        return Ok(());
    }
    log::header("$ python manage.py collectstatic --noinput");
    let output = env
        .command(venv.join("bin/python"))
        .args(["manage.py", "collectstatic", "--noinput"])
        .current_dir(app_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PythonBuildpackError::Command {
            what: "Django collectstatic".to_string(),
            file: "manage.py".to_string(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            log::info(line);
        }
        Ok(())
    } else if is_unknown_command(&output.stderr) {
        // No `django.contrib.staticfiles` in INSTALLED_APPS (an API-only app): Django has no
        // such command, and Heroku skips the step rather than fail. Run directly instead of
        // Heroku's `manage.py help collectstatic` probe, which costs a second Django start;
        // Django's message tells the two apart from a broken configuration.
        // <https://github.com/heroku/buildpacks-python/blob/main/src/django.rs>
        log::info(
            "Skipping Django collectstatic: the 'django.contrib.staticfiles' app is not in \
             INSTALLED_APPS.",
        );
        Ok(())
    } else {
        Err(PythonBuildpackError::Command {
            what: "Django collectstatic (`python manage.py collectstatic --noinput`)".to_string(),
            file: "manage.py".to_string(),
            detail: format!(
                "{text}\nFix the error above, or set DISABLE_COLLECTSTATIC=1 to skip this step."
            ),
        })
    }
}
