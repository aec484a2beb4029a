//! Default process types when the app has no Procfile (a Procfile overrides them).

use std::path::Path;

/// The `web` command for a known app shape, or `None`.
pub fn default_web_process(app_dir: &Path, venv_bin: &Path) -> Option<String> {
    let has = |tool: &str| venv_bin.join(tool).is_file();
    if app_dir.join("manage.py").is_file() && has("gunicorn") {
        if let Some(module) = django_wsgi_module(app_dir) {
            return Some(format!("gunicorn {module} --bind 0.0.0.0:$PORT"));
        }
    }
    if app_dir.join("app.py").is_file() && has("gunicorn") {
        return Some("gunicorn app:app --bind 0.0.0.0:$PORT".to_string());
    }
    if app_dir.join("main.py").is_file() && has("uvicorn") {
        return Some("uvicorn main:app --host 0.0.0.0 --port $PORT".to_string());
    }
    None
}

/// `<project>.wsgi` for the settings module `manage.py` names, else the one `*/wsgi.py`.
pub fn django_wsgi_module(app_dir: &Path) -> Option<String> {
    let manage =
        slugc_fs::input::read_app_text(app_dir, "manage.py", slugc_fs::input::MANIFEST_CAP)
            .ok()
            .flatten()
            .unwrap_or_default();
    let from_settings = manage
        .split("DJANGO_SETTINGS_MODULE")
        .nth(1)
        .and_then(|rest| {
            let start = rest.find(['"', '\''])?;
            let quote = rest[start..].chars().next()?;
            let value = &rest[start + 1..];
            Some(value[..value.find(quote)?].to_string())
        })
        .and_then(|settings| settings.rsplit_once('.').map(|(pkg, _)| pkg.to_string()))
        .filter(|pkg| {
            app_dir
                .join(pkg.replace('.', "/"))
                .join("wsgi.py")
                .is_file()
        });
    if from_settings.is_some() {
        return from_settings.map(|pkg| format!("{pkg}.wsgi"));
    }
    let mut found: Vec<String> = std::fs::read_dir(app_dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().join("wsgi.py").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Some(format!("{one}.wsgi")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_module_from_manage_py() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("mysite")).unwrap();
        std::fs::write(d.join("mysite/wsgi.py"), "").unwrap();
        std::fs::write(
            d.join("manage.py"),
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        )
        .unwrap();
        assert_eq!(django_wsgi_module(d).as_deref(), Some("mysite.wsgi"));
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        assert_eq!(default_web_process(d, &bin), None);
        std::fs::write(bin.join("gunicorn"), "").unwrap();
        assert_eq!(
            default_web_process(d, &bin).as_deref(),
            Some("gunicorn mysite.wsgi --bind 0.0.0.0:$PORT")
        );
    }
}
