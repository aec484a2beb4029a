//! Framework defaults for Python apps, tried in [`FRAMEWORKS`] order (the more specific first:
//! Gradio and Dash apps also pull in FastAPI or Flask). A framework applies when the app
//! declares one of its packages ([`crate::deps`]) and its entry point is found; a framework
//! whose server is not installed gives a note saying what to add, and the next one is tried.

use crate::deps::{self, Declared};
use crate::{scan, Inferred, Warning};
use std::path::Path;

/// What the rules see: the app, what it declares, and which programs its environment has
/// (the virtualenv's `bin` at build time; the declared packages when nothing is installed).
pub struct Context<'a> {
    pub app_dir: &'a Path,
    pub declared: &'a Declared,
    pub has_program: &'a dyn Fn(&str) -> bool,
}

/// The default `web` process, or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub web: Option<Inferred>,
    /// Why a framework the app uses gave no process (its server is not a dependency, …).
    pub notes: Vec<String>,
    pub warnings: Vec<Warning>,
}

struct Framework {
    name: &'static str,
    /// Declared packages that select the rule (any of them).
    packages: &'static [&'static str],
    /// The command and what it was found from, or a note on why there is none.
    infer: fn(&Context) -> Result<(String, String), String>,
}

const FRAMEWORKS: &[Framework] = &[
    Framework {
        name: "Django",
        packages: &["django"],
        infer: django,
    },
    Framework {
        name: "Streamlit",
        packages: &["streamlit"],
        infer: streamlit,
    },
    Framework {
        name: "Gradio",
        packages: &["gradio"],
        infer: gradio,
    },
    Framework {
        name: "Dash",
        packages: &["dash"],
        infer: dash,
    },
    Framework {
        name: "FastAPI",
        packages: &["fastapi"],
        infer: fastapi,
    },
    Framework {
        name: "Starlette",
        packages: &["starlette"],
        infer: starlette,
    },
    Framework {
        name: "Flask",
        packages: &["flask"],
        infer: flask,
    },
];

/// The frameworks, in the order they are tried, with the packages that select each.
pub fn rules() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    FRAMEWORKS.iter().map(|f| (f.name, f.packages))
}

/// The default `web` process for the app, with `has_program` telling which servers are
/// installed.
pub fn web(app_dir: &Path, has_program: &dyn Fn(&str) -> bool) -> Outcome {
    let (declared, warnings) = deps::declared(app_dir);
    let ctx = Context {
        app_dir,
        declared: &declared,
        has_program,
    };
    let mut out = Outcome {
        warnings,
        ..Outcome::default()
    };
    for f in FRAMEWORKS {
        // Django is also found by its `manage.py`, as Heroku's buildpack finds it.
        let django =
            f.name == "Django" && scan::text(app_dir, "manage.py").ok().flatten().is_some();
        let Some(package) = f
            .packages
            .iter()
            .find(|p| declared.has(p))
            .copied()
            .or(django.then_some("django"))
        else {
            continue;
        };
        match (f.infer)(&ctx) {
            Ok((command, detail)) => {
                out.web = Some(Inferred {
                    process_type: "web".to_string(),
                    command,
                    source: format!(
                        "{} default: {package} in {}, {detail}",
                        f.name,
                        declared.file()
                    ),
                });
                return out;
            }
            Err(note) => out.notes.push(format!("{}: {note}", f.name)),
        }
    }
    out
}

/// Which programs the declared packages install, for when nothing is installed yet
/// (`slug doctor`): a package's own name, and uvicorn from `fastapi[standard]`.
pub fn declared_programs(declared: &Declared) -> impl Fn(&str) -> bool + '_ {
    move |program| {
        declared.has(program)
            || (program == "uvicorn"
                && (declared.extras.contains("fastapi[standard]") || declared.has("fastapi-cli")))
    }
}

fn needs(program: &str, for_what: &str) -> String {
    format!("{for_what} needs {program}, which is not installed: add {program} to the dependencies (or a Procfile `web:`)")
}

/// `<project>.wsgi` (or `.asgi`) of the settings module `manage.py` names, else of the one
/// `*/wsgi.py` of the app root.
fn django(ctx: &Context) -> Result<(String, String), String> {
    let has = |p: &str| (ctx.has_program)(p);
    let Some((project, how)) = django_project(ctx.app_dir) else {
        return Err("no manage.py naming a settings module with a wsgi.py beside it, and not exactly one */wsgi.py".to_string());
    };
    if has("gunicorn") {
        return Ok((
            format!("gunicorn {project}.wsgi --bind 0.0.0.0:$PORT"),
            format!("{project}/wsgi.py ({how})"),
        ));
    }
    if has("uvicorn")
        && slugc_fs::input::is_app_file(
            ctx.app_dir,
            &format!("{}/asgi.py", project.replace('.', "/")),
        )
    {
        return Ok((
            format!("uvicorn {project}.asgi:application --host 0.0.0.0 --port $PORT"),
            format!("{project}/asgi.py ({how})"),
        ));
    }
    Err(needs("gunicorn", &format!("{project}.wsgi")))
}

/// The Django project package and how it was found.
pub fn django_project(app_dir: &Path) -> Option<(String, &'static str)> {
    // No readable manage.py: only the `*/wsgi.py` search below.
    let manage = scan::text(app_dir, "manage.py").ok().flatten();
    let from_settings = manage
        .as_deref()
        .and_then(|m| m.split("DJANGO_SETTINGS_MODULE").nth(1))
        .and_then(|rest| {
            // `setdefault('DJANGO_SETTINGS_MODULE', 'x.settings')` or `["…"] = "x.settings"`:
            // past the key's closing quote to the value's.
            let rest = rest.trim_start_matches(['\'', '"', ']', ' ', ',', '=']);
            Some(rest[..rest.find(['\'', '"'])?].to_string())
        })
        .and_then(|settings| settings.rsplit_once('.').map(|(pkg, _)| pkg.to_string()))
        .filter(|pkg| {
            slugc_fs::input::is_app_file(app_dir, &format!("{}/wsgi.py", pkg.replace('.', "/")))
        });
    if let Some(pkg) = from_settings {
        return Some((pkg, "DJANGO_SETTINGS_MODULE in manage.py"));
    }
    let mut found: Vec<String> = std::fs::read_dir(app_dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| slugc_fs::input::is_app_file(app_dir, &format!("{name}/wsgi.py")))
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Some((one.clone(), "the one */wsgi.py")),
        _ => None,
    }
}

/// The file that imports `module`, preferring `preferred`.
fn importing(ctx: &Context, preferred: &[&str], module: &str) -> Option<String> {
    scan::python_sources(ctx.app_dir, preferred)
        .into_iter()
        .find(|rel| {
            scan::text(ctx.app_dir, rel)
                .ok()
                .flatten()
                .is_some_and(|t| {
                    t.lines().any(|l| {
                        let l = l.trim_start();
                        l.starts_with(&format!("import {module}"))
                            || l.starts_with(&format!("from {module} import"))
                            || l.starts_with(&format!("from {module}."))
                    })
                })
        })
}

fn streamlit(ctx: &Context) -> Result<(String, String), String> {
    let preferred = ["streamlit_app.py", "app.py", "main.py", "Home.py"];
    let file = importing(ctx, &preferred, "streamlit").ok_or("no .py file imports streamlit")?;
    if !(ctx.has_program)("streamlit") {
        return Err(needs("streamlit", &file));
    }
    // Headless: no browser to open and no e-mail prompt on a first run.
    Ok((
        format!("streamlit run {file} --server.port $PORT --server.address 0.0.0.0 --server.headless true"),
        format!("{file} imports streamlit"),
    ))
}

fn gradio(ctx: &Context) -> Result<(String, String), String> {
    let file =
        importing(ctx, &["app.py", "main.py"], "gradio").ok_or("no .py file imports gradio")?;
    // Gradio's `launch()` reads its host and port from these when the code does not set them.
    Ok((
        format!("GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=$PORT python {file}"),
        format!("{file} imports gradio"),
    ))
}

fn dash(ctx: &Context) -> Result<(String, String), String> {
    let (file, var) = find_object(
        ctx,
        &["app.py", "main.py", "index.py"],
        &["Dash(", "dash.Dash("],
    )
    .ok_or("no `<name> = Dash(...)` in a .py file")?;
    let module = module_of(&file);
    let server = scan::text(ctx.app_dir, &file)
        .ok()
        .flatten()
        .and_then(|text| assigned_from(&text, &format!("{var}.server")));
    match server {
        Some(server) if (ctx.has_program)("gunicorn") => Ok((
            format!("gunicorn {module}:{server} --bind 0.0.0.0:$PORT"),
            format!("{server} = {var}.server in {file}"),
        )),
        // Dash's `run()` takes its port from `PORT` and its host from `HOST`.
        _ => Ok((
            format!("HOST=0.0.0.0 python {file}"),
            format!("{var} = Dash() in {file}, run by its own server"),
        )),
    }
}

fn asgi(ctx: &Context, class: &str) -> Result<(String, String), String> {
    let constructors = [
        format!("{class}("),
        format!("{}.{class}(", class.to_ascii_lowercase()),
    ];
    let constructors: Vec<&str> = constructors.iter().map(String::as_str).collect();
    let (file, var) = find_object(
        ctx,
        &[
            "main.py",
            "app.py",
            "app/main.py",
            "api.py",
            "server.py",
            "asgi.py",
            "api/main.py",
            "src/main.py",
        ],
        &constructors,
    )
    .ok_or(format!("no `<name> = {class}(...)` in a .py file"))?;
    if !(ctx.has_program)("uvicorn") {
        return Err(needs("uvicorn", &format!("{}:{var}", module_of(&file))));
    }
    Ok((
        format!(
            "uvicorn {}:{var} --host 0.0.0.0 --port $PORT",
            module_of(&file)
        ),
        format!("{var} = {class}() in {file}"),
    ))
}

fn fastapi(ctx: &Context) -> Result<(String, String), String> {
    asgi(ctx, "FastAPI")
}

fn starlette(ctx: &Context) -> Result<(String, String), String> {
    asgi(ctx, "Starlette")
}

fn flask(ctx: &Context) -> Result<(String, String), String> {
    let preferred = [
        "app.py",
        "wsgi.py",
        "main.py",
        "application.py",
        "server.py",
        "run.py",
        "app/__init__.py",
    ];
    let (target, detail) = match find_object(ctx, &preferred, &["Flask(", "flask.Flask("]) {
        Some((file, var)) => (
            format!("{}:{var}", module_of(&file)),
            format!("{var} = Flask() in {file}"),
        ),
        None => {
            let file = scan::python_sources(ctx.app_dir, &preferred)
                .into_iter()
                .find(|rel| {
                    scan::text(ctx.app_dir, rel)
                        .ok()
                        .flatten()
                        .is_some_and(|t| t.lines().any(|l| l.starts_with("def create_app(")))
                })
                .ok_or("no `<name> = Flask(...)` or `def create_app(` in a .py file")?;
            (
                format!("'{}:create_app()'", module_of(&file)),
                format!("create_app() in {file}"),
            )
        }
    };
    if !(ctx.has_program)("gunicorn") {
        return Err(needs("gunicorn", &target));
    }
    Ok((format!("gunicorn {target} --bind 0.0.0.0:$PORT"), detail))
}

/// The first file (of `preferred`, then the others) with a top-level `<name> = <ctor>…` (or
/// `<name>: T = <ctor>…`), and the name.
fn find_object(
    ctx: &Context,
    preferred: &[&str],
    constructors: &[&str],
) -> Option<(String, String)> {
    scan::python_sources(ctx.app_dir, preferred)
        .into_iter()
        .find_map(|rel| {
            let text = scan::text(ctx.app_dir, &rel).ok().flatten()?;
            let var = text.lines().find_map(|line| {
                let (lhs, rhs) = line.split_once('=')?;
                let name = lhs.split(':').next()?.trim_end();
                let top_level = !line.starts_with(char::is_whitespace);
                let ident = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                let rhs = rhs.trim_start();
                (top_level
                    && ident
                    && !rhs.starts_with('=')
                    && constructors.iter().any(|c| rhs.starts_with(c)))
                .then(|| name.to_string())
            })?;
            Some((rel, var))
        })
}

/// The top-level name assigned exactly `expr`.
fn assigned_from(text: &str, expr: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (lhs, rhs) = line.split_once('=')?;
        (!line.starts_with(char::is_whitespace) && rhs.trim() == expr)
            .then(|| lhs.trim().to_string())
            .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// `app/main.py` → `app.main`, `app/__init__.py` → `app`.
fn module_of(rel: &str) -> String {
    let stem = rel.strip_suffix(".py").unwrap_or(rel);
    let stem = stem.strip_suffix("/__init__").unwrap_or(stem);
    stem.replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_app::app;

    fn web_with(files: &[(&str, &str)], programs: &[&str]) -> Outcome {
        let dir = app(files);
        let has = |p: &str| programs.contains(&p);
        web(dir.path(), &has)
    }

    fn command(files: &[(&str, &str)], programs: &[&str]) -> Option<String> {
        web_with(files, programs).web.map(|w| w.command)
    }

    #[test]
    fn django_wsgi_then_asgi() {
        let files = [
            ("requirements.txt", "Django==5\n"),
            (
                "manage.py",
                "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
            ),
            ("mysite/wsgi.py", ""),
            ("mysite/asgi.py", ""),
        ];
        let out = web_with(&files, &["gunicorn", "uvicorn"]);
        let web = out.web.unwrap();
        assert_eq!(web.command, "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT");
        assert_eq!(
            web.source,
            "Django default: django in requirements.txt, mysite/wsgi.py (DJANGO_SETTINGS_MODULE in manage.py)"
        );
        assert_eq!(
            command(&files, &["uvicorn"]).unwrap(),
            "uvicorn mysite.asgi:application --host 0.0.0.0 --port $PORT"
        );
        let out = web_with(&files, &[]);
        assert_eq!(out.web, None);
        assert!(out.notes[0].contains("add gunicorn"), "{:?}", out.notes);
    }

    #[test]
    fn fastapi_starlette_flask_objects() {
        let fastapi = [
            ("requirements.txt", "fastapi\nuvicorn\n"),
            (
                "app/main.py",
                "from fastapi import FastAPI\n\napi: FastAPI = FastAPI(title='x')\n",
            ),
        ];
        assert_eq!(
            command(&fastapi, &["uvicorn"]).unwrap(),
            "uvicorn app.main:api --host 0.0.0.0 --port $PORT"
        );
        assert!(web_with(&fastapi, &[]).notes[0].contains("needs uvicorn"));
        let starlette = [
            (
                "pyproject.toml",
                "[project]\ndependencies = [\"starlette\", \"uvicorn\"]\n",
            ),
            (
                "server.py",
                "import starlette.applications\napp = starlette.Starlette(routes=[])\n",
            ),
        ];
        assert_eq!(
            command(&starlette, &["uvicorn"]).unwrap(),
            "uvicorn server:app --host 0.0.0.0 --port $PORT"
        );
        let flask = [
            ("requirements.txt", "flask\ngunicorn\n"),
            ("wsgi.py", "from flask import Flask\n\ndef f():\n    app = Flask('inner')\nserver = Flask(__name__)\n"),
        ];
        assert_eq!(
            command(&flask, &["gunicorn"]).unwrap(),
            "gunicorn wsgi:server --bind 0.0.0.0:$PORT"
        );
        let factory = [
            ("requirements.txt", "flask\ngunicorn\n"),
            (
                "app/__init__.py",
                "def create_app():\n    return Flask(__name__)\n",
            ),
        ];
        assert_eq!(
            command(&factory, &["gunicorn"]).unwrap(),
            "gunicorn 'app:create_app()' --bind 0.0.0.0:$PORT"
        );
        // Declared but no app object: no guess.
        assert_eq!(
            command(&[("requirements.txt", "flask\n")], &["gunicorn"]),
            None
        );
    }

    #[test]
    fn streamlit_gradio_dash() {
        let streamlit = [
            ("requirements.txt", "streamlit==1.40\nfastapi\n"),
            ("helpers.py", "import os\n"),
            ("dashboard.py", "import streamlit as st\nst.write('hi')\n"),
        ];
        let out = web_with(&streamlit, &["streamlit", "uvicorn"]);
        assert_eq!(
            out.web.unwrap().command,
            "streamlit run dashboard.py --server.port $PORT --server.address 0.0.0.0 --server.headless true"
        );
        assert_eq!(
            command(
                &[
                    ("requirements.txt", "gradio\n"),
                    ("app.py", "import gradio as gr\n")
                ],
                &[]
            )
            .unwrap(),
            "GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=$PORT python app.py"
        );
        let dash = [
            ("requirements.txt", "dash\ngunicorn\n"),
            (
                "app.py",
                "import dash\napp = dash.Dash(__name__)\nserver = app.server\n",
            ),
        ];
        assert_eq!(
            command(&dash, &["gunicorn"]).unwrap(),
            "gunicorn app:server --bind 0.0.0.0:$PORT"
        );
        assert_eq!(command(&dash, &[]).unwrap(), "HOST=0.0.0.0 python app.py");
    }

    #[test]
    fn doctor_programs_come_from_the_declared_packages() {
        let dir = app(&[("requirements.txt", "fastapi[standard]\n")]);
        let (d, _) = deps::declared(dir.path());
        let has = declared_programs(&d);
        assert!(has("uvicorn"));
        assert!(!has("gunicorn"));
    }
}
