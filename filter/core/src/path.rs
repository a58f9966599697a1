//! The request path as rules see it. Pure: no host calls.
//!
//! A rule protects a path only if the application reads the path as certgate
//! does. So a path is first put in one normal form (percent-encoded
//! unreserved characters decoded, repeated `/` merged), which certgate also
//! forwards, and paths an application could read as another path are
//! refused. Then it is read every way applications are known to read it:
//! with and without a trailing `/` (Express ignores it), with letters folded to lower case or not (Express folds
//! case, Flask and Tomcat do not), with `;` path parameters or without them
//! (servlet containers drop them). The request must pass the rule of every
//! reading, so whichever reading the application picks, its rule was met.

use serde::Deserialize;

/// How the application behind certgate treats the case of letters in paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PathCase {
    /// Not known: the request must pass the rules of the path as written
    /// and with case folded.
    #[default]
    Either,
    /// The application routes `/Admin/` and `/admin/` apart (Flask, Tomcat, nginx).
    Sensitive,
    /// The application routes them alike (Express by default, IIS): rules
    /// match without regard to ASCII case.
    Insensitive,
}

/// What a `;` in a path segment (a path parameter, `/admin;x/`) is to the
/// application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Not known: the request must pass the rules of the path with and
    /// without its parameters.
    #[default]
    Either,
    /// The application drops them, as servlet containers do (`/admin;x/` is
    /// `/admin/` to Tomcat): rules see the path without them.
    Strip,
    /// The application keeps them as part of the segment: rules see them too.
    Keep,
}

/// The path settings of a policy: how the application behind certgate reads paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathSettings {
    /// Whether the application folds the case of letters.
    #[serde(default)]
    pub case: PathCase,
    /// What a `;` in a segment is to the application.
    #[serde(default)]
    pub parameters: PathParameters,
}

/// A path rules are matched against, and the query it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Starts with `/`; no query.
    pub path: String,
    /// `?` and what follows, as received (empty if none).
    pub query: String,
}

impl NormalPath {
    /// Whether `raw` is this path and query exactly, so nothing need be rewritten.
    pub fn is_spelled(&self, raw: &str) -> bool {
        raw.strip_prefix(self.path.as_str()) == Some(self.query.as_str())
    }
}

/// The normal form of a raw `:path`: no query or fragment, percent-encoded
/// unreserved characters decoded (`/%61dmin/` is `/admin/`), repeated `/`
/// merged. `None` for a path that an application could read as another path
/// than any certgate reads: no leading `/`, `.` or `..` segments, an encoded
/// `/`, `\` or `;`, a backslash, a bad percent escape, control characters, a
/// segment that starts or ends with a space or ends with `.` (Windows servers
/// and Spring's trimming read `/admin./` and `/admin%20/` as `/admin/`).
pub fn normalize(raw: &str) -> Option<NormalPath> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let (raw_path, query) = (raw.get(..end)?, raw.get(end..)?);
    // a fragment is never sent; if it is, it does not go on
    let query = query.split('#').next().unwrap_or_default().to_owned();
    if !raw_path.starts_with('/') {
        return None;
    }
    let bytes = raw_path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i..i + 2)?).ok()?;
                let v = u8::from_str_radix(hex, 16).ok()?;
                i += 2;
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    decoded.push(v);
                } else if v == b'/' || v == b'\\' || v == b';' || v < 0x20 || v == 0x7f {
                    return None;
                } else {
                    decoded.push(b'%');
                    decoded.extend_from_slice(hex.to_ascii_uppercase().as_bytes());
                }
            }
            b'\\' => return None,
            b if b < 0x20 || b == 0x7f => return None,
            b => decoded.push(b),
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut path = String::with_capacity(decoded.len());
    for (i, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." || trimmed_elsewhere(segment) {
            return None;
        }
        if segment.is_empty() {
            // `//` merges; a trailing `/` stays
            if i == last {
                path.push('/');
            }
            continue;
        }
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    Some(NormalPath { path, query })
}

/// A segment some servers read without its edges: a leading or trailing
/// space (encoded, as `%20` or a no-break space) or a trailing `.`.
fn trimmed_elsewhere(segment: &str) -> bool {
    const SPACES: [&str; 3] = ["%20", "%A0", "%C2%A0"];
    SPACES.iter().any(|s| segment.starts_with(s) || segment.ends_with(s)) || segment.ends_with('.')
}

/// One way an application may read a normal path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The path as this reading sees it.
    pub path: String,
    /// Compare letters without regard to ASCII case.
    pub fold_case: bool,
}

/// The path without its `;` parameters (each up to the next `/`), segments
/// left empty dropped: `/;x/admin;y/` is `/admin/`, as Tomcat reads it.
pub fn without_parameters(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').skip(1) {
        let segment = segment.split(';').next().unwrap_or_default();
        if !segment.is_empty() {
            out.push('/');
            out.push_str(segment);
        }
    }
    if path.ends_with('/') || out.is_empty() {
        out.push('/');
    }
    out
}

/// Every reading of a normal path whose rule the request must pass: with
/// and without its parameters, with its trailing `/` added or removed, and
/// with case folded or not, as the settings say. The first is the path as
/// written (without its parameters under `Strip`). `None` when a reading is a path certgate refuses (`/admin.;x/`
/// is `/admin./` without its parameter).
pub fn readings(path: &str, settings: PathSettings) -> Option<Vec<Reading>> {
    let mut bases = Vec::with_capacity(2);
    let has_parameters = path.contains(';');
    let stripped = || {
        let bare = without_parameters(path);
        (!bare.split('/').any(trimmed_elsewhere)).then_some(bare)
    };
    match settings.parameters {
        PathParameters::Keep => bases.push(path.to_owned()),
        PathParameters::Strip => bases.push(stripped()?),
        PathParameters::Either => {
            bases.push(path.to_owned());
            if has_parameters {
                bases.push(stripped()?);
            }
        }
    }
    let mut paths = Vec::with_capacity(bases.len() * 2);
    for base in bases {
        let other = match base.strip_suffix('/') {
            Some("") => None,
            Some(bare) => Some(bare.to_owned()),
            None => Some(format!("{base}/")),
        };
        paths.push(base);
        paths.extend(other);
    }
    let folds: &[bool] = match settings.case {
        PathCase::Sensitive => &[false],
        PathCase::Insensitive => &[true],
        // folding changes nothing without an upper-case letter
        PathCase::Either if path.bytes().any(|b| b.is_ascii_uppercase()) => &[false, true],
        PathCase::Either => &[false],
    };
    Some(
        folds
            .iter()
            .flat_map(|&fold_case| {
                paths.iter().map(move |p| Reading {
                    path: p.clone(),
                    fold_case,
                })
            })
            .collect(),
    )
}

/// Whether `path` is `under` or below it: `/admin` covers `/admin`,
/// `/admin/` and `/admin/x`, not `/administrator` (Envoy's
/// `path_separated_prefix`). `under` has no trailing `/`.
pub fn is_under(path: &str, under: &str, fold_case: bool) -> bool {
    let Some(head) = path.get(..under.len()) else { return false };
    let same = if fold_case {
        head.eq_ignore_ascii_case(under)
    } else {
        head == under
    };
    same && matches!(path.as_bytes().get(under.len()), None | Some(b'/'))
}

/// Whether two paths are the same under a reading.
pub fn is_same(path: &str, exact: &str, fold_case: bool) -> bool {
    if fold_case {
        path.eq_ignore_ascii_case(exact)
    } else {
        path == exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Option<String> {
        normalize(raw).map(|n| n.path)
    }

    #[test]
    fn paths_are_normalised_for_matching() {
        for (raw, want) in [
            ("/", "/"),
            ("/admin/x?y=1", "/admin/x"),
            ("/admin/x#frag", "/admin/x"),
            ("/%61dmin/", "/admin/"),
            ("//admin//x", "/admin/x"),
            ("/admin/", "/admin/"),
            ("/a//", "/a/"),
            ("/a%20b", "/a%20b"),
            ("/a%3f", "/a%3F"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/..b", "/a/..b"),
            ("/app;jsessionid=1/x", "/app;jsessionid=1/x"),
        ] {
            assert_eq!(norm(raw).as_deref(), Some(want), "{raw}");
        }
        let n = normalize("/%61pp//x?a=%2F&b#f").unwrap();
        assert_eq!((n.path.as_str(), n.query.as_str()), ("/app/x", "?a=%2F&b"));
        assert!(!n.is_spelled("/%61pp//x?a=%2F&b#f"));
        assert!(n.is_spelled("/app/x?a=%2F&b"));
        assert!(normalize("/app/x").unwrap().is_spelled("/app/x"));
    }

    #[test]
    fn paths_an_application_could_read_otherwise_are_refused() {
        for raw in [
            "",
            "admin",
            "*",
            "/public/../admin/",
            "/public/%2e%2e/admin",
            "/./admin",
            "/admin/.",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%zz",
            "/a%4",
            "/a%00",
            "/a\nb",
            "/admin%3bx/",
            "/admin%3B/",
            "/admin%20/",
            "/%20admin/",
            "/admin%C2%A0/",
            "/admin%a0/",
            "/admin./",
            "/admin../x",
            "/admin%2e/",
        ] {
            assert_eq!(norm(raw), None, "{raw:?}");
        }
        assert_eq!(norm("/a%20b/c"), Some("/a%20b/c".into()), "a space inside a segment is a name");
    }

    fn paths(p: &str, case: PathCase, parameters: PathParameters) -> Vec<(String, bool)> {
        readings(p, PathSettings { case, parameters })
            .unwrap()
            .into_iter()
            .map(|r| (r.path, r.fold_case))
            .collect()
    }

    #[test]
    fn readings_cover_the_trailing_slash_case_and_parameters() {
        use PathCase as C;
        use PathParameters as P;
        assert_eq!(
            paths("/admin/", C::Either, P::Either),
            [("/admin/".into(), false), ("/admin".into(), false)]
        );
        assert_eq!(
            paths("/Admin", C::Either, P::Either),
            [
                ("/Admin".into(), false),
                ("/Admin/".into(), false),
                ("/Admin".into(), true),
                ("/Admin/".into(), true)
            ]
        );
        assert_eq!(paths("/Admin", C::Sensitive, P::Either).len(), 2);
        assert!(paths("/Admin", C::Insensitive, P::Either).iter().all(|(_, f)| *f));
        assert_eq!(paths("/", C::Either, P::Either), [("/".into(), false)]);
        assert_eq!(
            paths("/admin;x/y", C::Either, P::Either)
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>(),
            ["/admin;x/y", "/admin;x/y/", "/admin/y", "/admin/y/"]
        );
        assert_eq!(paths("/admin;x/y", C::Either, P::Strip)[0].0, "/admin/y");
        assert_eq!(paths("/admin;x/y", C::Either, P::Keep)[0].0, "/admin;x/y");
        assert_eq!(without_parameters("/;a/b;c=d/e;"), "/b/e");
        let settings = PathSettings::default();
        assert_eq!(readings("/admin.;x/", settings), None, "without its parameter it is `/admin./`");
        assert_eq!(readings("/admin%20;x/", settings), None);
        assert_eq!(without_parameters("/;x/admin;y/"), "/admin/");
        assert_eq!(without_parameters("/;x"), "/");
    }

    #[test]
    fn under_means_the_path_and_what_is_below_it() {
        assert!(is_under("/admin", "/admin", false));
        assert!(is_under("/admin/", "/admin", false));
        assert!(is_under("/admin/x/y", "/admin", false));
        assert!(!is_under("/administrator", "/admin", false));
        assert!(!is_under("/adm", "/admin", false));
        assert!(!is_under("/Admin/x", "/admin", false));
        assert!(is_under("/Admin/x", "/admin", true));
        assert!(!is_under("/caf\u{e9}/", "/cafe", true));
    }
}
