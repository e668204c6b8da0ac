//! Loading a policy from TOML, and instantiating its profiles with parameters.
//!
//! The TOML is walked as a tree of spanned values (`toml::de::DeTable`) rather than through
//! serde derive, so that every error — unknown key, wrong type, bad value — points at the line
//! and column of the offending key or value and names it by its full key path.

use crate::error::PolicyError;
use crate::host::{parse_dns_name, parse_host, HostName};
use crate::path::split_clean;
use crate::profile::{
    FsGrant, HostPattern, Limits, MountGrant, NetGrant, OnViolation, Profile, Rights, Scheme, Scope,
};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

/// A loaded, validated policy: named profiles, each possibly with parameters.
///
/// ```
/// use portcullis_policy::{Access, Decision, Policy};
/// let policy = Policy::from_toml_str(
///     r#"
///     [profiles.renderer]
///     params = ["site"]
///     [[profiles.renderer.fs]]
///     path = "/srv/sites/${site}"
///     rights = ["read", "list"]
///     [[profiles.renderer.net]]
///     scheme = "https"
///     host = "${site}"
///     "#,
///     "example.toml",
/// )?;
/// let profile = policy.instantiate("renderer", &[("site", "example.com")])?;
/// assert_eq!(
///     profile.decide(&Access::ReadDir { path: "/srv/sites/example.com/img" }),
///     Decision::AllowPath { grant: 0, relative: "img".into() }
/// );
/// assert!(matches!(
///     profile.decide(&Access::Fetch { url: "https://example.com/" }),
///     Decision::AllowNet { grant: 0, port: 443, .. }
/// ));
/// # Ok::<(), portcullis_policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    origin: String,
    profiles: BTreeMap<String, ProfileTemplate>,
}

/// A profile as written: grants may still hold `${param}` placeholders.
#[derive(Debug, Clone)]
struct ProfileTemplate {
    params: Vec<String>,
    /// Parameters that appear in some `host`; their values must be host names or addresses.
    host_params: Vec<String>,
    fs: Vec<FsTemplate>,
    net: Vec<NetTemplate>,
    limits: Limits,
    mounts: Vec<MountTemplate>,
}

#[derive(Debug, Clone)]
struct MountTemplate {
    path: Template,
    writable: bool,
}

#[derive(Debug, Clone)]
struct FsTemplate {
    path: Template,
    literal: bool,
    rights: Rights,
}

#[derive(Debug, Clone)]
struct NetTemplate {
    scheme: Scheme,
    host: Template,
    ports: Vec<u16>,
    allow_private: bool,
}

/// A string with `${name}` placeholders.
#[derive(Debug, Clone)]
struct Template {
    raw: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Param(String),
}

impl Template {
    /// Splits `raw` at its placeholders; every placeholder must name a declared parameter.
    /// The error completes "`<key>` ..." and says what to change.
    fn parse(raw: &str, declared: &[String], profile_path: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err("has an unterminated placeholder; write ${name}".to_owned());
            };
            let name = &after[..end];
            if !is_identifier(name) {
                return Err(format!(
                    "has an invalid placeholder \"${{{name}}}\"; parameter names are letters, \
                     digits and '_'"
                ));
            }
            if !declared.iter().any(|d| d == name) {
                return Err(format!(
                    "uses undeclared parameter \"${{{name}}}\"; declare it in \
                     {profile_path}.params = [\"{name}\"]"
                ));
            }
            pieces.push(Piece::Param(name.to_owned()));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template {
            raw: raw.to_owned(),
            pieces,
        })
    }

    /// Substitutes every placeholder in one pass; values are never rescanned.
    fn render(&self, value_of: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Param(name) => out.push_str(&value_of(name)),
            }
        }
        out
    }

    fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a host pattern: `*.` and a DNS name, a DNS name, or an IP address.
fn parse_host_pattern(text: &str) -> Option<HostPattern> {
    if let Some(base) = text.strip_prefix("*.") {
        return parse_dns_name(base).map(HostPattern::Subdomains);
    }
    Some(match parse_host(text)? {
        HostName::Dns(name) => HostPattern::Exact(name),
        HostName::Ip(addr) => HostPattern::Ip(addr),
    })
}

const RIGHTS: &str = "read, write, create, delete, list";
const HOST_FORMS: &str =
    "a DNS name (\"example.com\"), \"*.\" and a DNS name (\"*.example.com\"), or an IP address";

impl Policy {
    /// Parses and validates a policy. `origin` names the source in errors (e.g. the file path).
    ///
    /// Errors: invalid TOML; unknown keys anywhere; values of the wrong type or out of range;
    /// paths that are not clean absolute paths; placeholders naming undeclared parameters; a
    /// `tcp` grant without a port. Each error carries the line and column of the offending key
    /// or value.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let root = DeTable::parse(text).map_err(|e| {
            let mut message = format!("invalid TOML: {}", e.message());
            let snippet = e.span().and_then(|span| text.get(span)).unwrap_or_default();
            if !snippet.is_empty() {
                let shown: String = snippet.chars().take(40).collect();
                message.push_str(&format!("; found {shown:?}"));
            }
            match e.span() {
                Some(span) => PolicyError::at(origin, text, span.start, message),
                None => PolicyError::unlocated(origin, message),
            }
        })?;
        let loader = Loader { text, origin };
        let profiles = loader.policy(root.get_ref())?;
        Ok(Policy {
            origin: origin.to_owned(),
            profiles,
        })
    }

    /// The names of the profiles, in sorted order.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The parameters `profile` declares (its `params`, in the order written), which
    /// [`Policy::instantiate`] needs a value for; `None` if there is no such profile.
    ///
    /// ```
    /// use portcullis_policy::Policy;
    /// let policy = Policy::from_toml_str("[profiles.web]\nparams = [\"site\"]\n", "p.toml")?;
    /// assert_eq!(policy.profile_params("web"), Some(&["site".to_owned()][..]));
    /// assert_eq!(policy.profile_params("other"), None);
    /// # Ok::<(), portcullis_policy::PolicyError>(())
    /// ```
    pub fn profile_params(&self, profile: &str) -> Option<&[String]> {
        self.profiles.get(profile).map(|p| p.params.as_slice())
    }

    /// A profile with its parameters substituted, ready for decisions.
    ///
    /// Every declared parameter must be given exactly once, and no other. A value must not be
    /// empty or `.`, and must not contain `/`, NUL, `..` or `${`, so a parameter can never
    /// add path components; a value used in a `host` must also be a DNS name or IP address.
    /// The substituted paths and hosts are checked again as a whole.
    ///
    /// Errors carry line and column 0: they are about the call, not the text.
    pub fn instantiate(
        &self,
        profile: &str,
        params: &[(&str, &str)],
    ) -> Result<Profile, PolicyError> {
        self.instantiate_with_mounts(profile, params)
            .map(|(profile, _)| profile)
    }

    /// [`Policy::instantiate`], plus the profile's `mounts`: the host paths an exec-mode program
    /// sees in its read-only minimal root (`[[profiles.NAME.mounts]]`, each `path` with
    /// `access = "ro"` or `"rw"`), parameters substituted and each path checked again. Only exec
    /// mode uses them (`portcullis run`); a child running an entry function has an empty root.
    ///
    /// Errors: as [`Policy::instantiate`].
    pub fn instantiate_with_mounts(
        &self,
        profile: &str,
        params: &[(&str, &str)],
    ) -> Result<(Profile, Vec<MountGrant>), PolicyError> {
        let fail = |message: String| PolicyError::unlocated(&self.origin, message);
        let template = self.profiles.get(profile).ok_or_else(|| {
            let names: Vec<&str> = self.profile_names().collect();
            fail(format!(
                "no profile named {profile:?}; the policy defines {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })?;
        let mut values: BTreeMap<&str, &str> = BTreeMap::new();
        for &(name, value) in params {
            if !template.params.iter().any(|p| p == name) {
                return Err(fail(format!(
                    "profile {profile:?} has no parameter {name:?}; it declares {}",
                    if template.params.is_empty() {
                        "none".to_owned()
                    } else {
                        template.params.join(", ")
                    }
                )));
            }
            if values.insert(name, value).is_some() {
                return Err(fail(format!(
                    "parameter {name:?} of profile {profile:?} is given more than once"
                )));
            }
            let in_host = template.host_params.iter().any(|p| p == name);
            if let Some(problem) = param_value_problem(value, in_host) {
                return Err(fail(format!(
                    "parameter {name:?} of profile {profile:?} {problem}; found {value:?}"
                )));
            }
        }
        if let Some(missing) = template
            .params
            .iter()
            .find(|p| !values.contains_key(p.as_str()))
        {
            return Err(fail(format!(
                "profile {profile:?} needs parameter {missing:?}"
            )));
        }
        let value_of = |name: &str| values.get(name).copied().unwrap_or_default().to_owned();

        let mut fs = Vec::with_capacity(template.fs.len());
        for grant in &template.fs {
            let path = grant.path.render(&value_of);
            let components = split_clean(&path).map_err(|problem| {
                fail(format!(
                    "profile {profile:?}: fs path {:?} becomes {path:?}, which must {}",
                    grant.path.raw,
                    problem.requirement()
                ))
            })?;
            let (root, scope) = match (grant.literal, components.split_last()) {
                (false, _) => (path.clone(), Scope::Subtree),
                (true, Some((file_name, parents))) => (
                    format!("/{}", parents.join("/")),
                    Scope::Literal {
                        file_name: (*file_name).to_owned(),
                    },
                ),
                (true, None) => {
                    return Err(fail(format!(
                        "profile {profile:?}: literal fs path {:?} must name a file, not \"/\"",
                        grant.path.raw
                    )))
                }
            };
            fs.push(FsGrant {
                root,
                scope,
                rights: grant.rights,
            });
        }

        let mut net = Vec::with_capacity(template.net.len());
        for grant in &template.net {
            let host = grant.host.render(&value_of);
            let pattern = parse_host_pattern(&host).ok_or_else(|| {
                fail(format!(
                    "profile {profile:?}: net host {:?} becomes {host:?}, which must be {HOST_FORMS}",
                    grant.host.raw
                ))
            })?;
            net.push(NetGrant {
                scheme: grant.scheme,
                host: pattern,
                ports: grant.ports.clone(),
                allow_private: grant.allow_private,
            });
        }
        let mut mounts = Vec::with_capacity(template.mounts.len());
        for mount in &template.mounts {
            let path = mount.path.render(&value_of);
            match split_clean(&path) {
                Ok(components) if !components.is_empty() => {}
                Ok(_) => {
                    return Err(fail(format!(
                        "profile {profile:?}: mount path {:?} becomes \"/\"; mount the \
                         directories the program needs, not the whole host",
                        mount.path.raw
                    )))
                }
                Err(problem) => {
                    return Err(fail(format!(
                        "profile {profile:?}: mount path {:?} becomes {path:?}, which must {}",
                        mount.path.raw,
                        problem.requirement()
                    )))
                }
            }
            mounts.push(MountGrant {
                path,
                writable: mount.writable,
            });
        }
        Ok((
            Profile {
                fs,
                net,
                limits: template.limits,
            },
            mounts,
        ))
    }
}

/// Why a parameter value is refused, as the end of a sentence, or `None` if it is fine.
fn param_value_problem(value: &str, in_host: bool) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value == "." {
        Some("must not be \".\"")
    } else if value.contains('/') {
        Some("must not contain '/'")
    } else if value.contains('\0') {
        Some("must not contain NUL")
    } else if value.contains("..") {
        Some("must not contain \"..\"")
    } else if value.contains("${") {
        Some("must not contain \"${\"")
    } else if in_host && parse_host(value).is_none() {
        Some("is used in a host and must be a DNS name or an IP address")
    } else {
        None
    }
}

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<DeString<'i>>;

/// Walks the spanned TOML tree; every error points into `text`.
struct Loader<'t> {
    text: &'t str,
    origin: &'t str,
}

/// A table's entries in document order (the map itself is sorted by key), so the first error
/// reported is the first in the file.
fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

fn get<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<(&'a Key<'i>, &'a Value<'i>)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

/// A value as quoted in "found ..." parts of messages.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => format!("float {}", f.as_str()),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

impl Loader<'_> {
    fn error(&self, span: Range<usize>, message: String) -> PolicyError {
        PolicyError::at(self.origin, self.text, span.start, message)
    }

    fn check_keys(
        &self,
        table: &DeTable<'_>,
        at: &str,
        allowed: &[&str],
    ) -> Result<(), PolicyError> {
        for (key, _) in entries(table) {
            let name = key.get_ref().as_ref();
            if !allowed.contains(&name) {
                let place = if at.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in {at}")
                };
                return Err(self.error(
                    key.span(),
                    format!(
                        "unknown key {name:?} {place}; expected one of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn table<'a, 'i>(
        &self,
        value: &'a Value<'i>,
        at: &str,
    ) -> Result<&'a DeTable<'i>, PolicyError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            other => Err(self.error(
                value.span(),
                format!("{at} must be a table; found {}", describe(other)),
            )),
        }
    }

    fn string<'a>(
        &self,
        value: &'a Value<'_>,
        at: &str,
        expected: &str,
    ) -> Result<&'a str, PolicyError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            other => Err(self.error(
                value.span(),
                format!("{at} must be {expected}; found {}", describe(other)),
            )),
        }
    }

    fn boolean(&self, value: &Value<'_>, at: &str) -> Result<bool, PolicyError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.error(
                value.span(),
                format!("{at} must be true or false; found {}", describe(other)),
            )),
        }
    }

    fn integer<T>(&self, value: &Value<'_>, at: &str, min: T, max: T) -> Result<T, PolicyError>
    where
        T: Copy + Display + Into<i128> + TryFrom<i128>,
    {
        let fail = || {
            self.error(
                value.span(),
                format!(
                    "{at} must be an integer between {min} and {max}; found {}",
                    describe(value.get_ref())
                ),
            )
        };
        let DeValue::Integer(integer) = value.get_ref() else {
            return Err(fail());
        };
        let n = i128::from_str_radix(integer.as_str(), integer.radix()).map_err(|_| fail())?;
        if n < min.into() || n > max.into() {
            return Err(fail());
        }
        T::try_from(n).map_err(|_| fail())
    }

    fn array<'a, 'i>(
        &self,
        value: &'a Value<'i>,
        at: &str,
        expected: &str,
    ) -> Result<&'a [Value<'i>], PolicyError> {
        match value.get_ref() {
            DeValue::Array(items) => Ok(items),
            other => Err(self.error(
                value.span(),
                format!("{at} must be {expected}; found {}", describe(other)),
            )),
        }
    }

    fn policy(&self, root: &DeTable<'_>) -> Result<BTreeMap<String, ProfileTemplate>, PolicyError> {
        self.check_keys(root, "", &["profiles"])?;
        let mut profiles = BTreeMap::new();
        let Some((_, value)) = get(root, "profiles") else {
            return Ok(profiles);
        };
        for (name, value) in entries(self.table(value, "profiles")?) {
            let name_str = name.get_ref().as_ref();
            let valid = !name_str.is_empty()
                && name_str
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(self.error(
                    name.span(),
                    format!("profile name {name_str:?} must be letters, digits, '-' and '_' only"),
                ));
            }
            let at = format!("profiles.{name_str}");
            let profile = self.profile(self.table(value, &at)?, &at)?;
            profiles.insert(name_str.to_owned(), profile);
        }
        Ok(profiles)
    }

    fn profile(&self, table: &DeTable<'_>, at: &str) -> Result<ProfileTemplate, PolicyError> {
        self.check_keys(table, at, &["params", "fs", "net", "limits", "mounts"])?;
        let params = match get(table, "params") {
            Some((_, value)) => self.params(value, &format!("{at}.params"))?,
            None => Vec::new(),
        };
        let mut fs = Vec::new();
        if let Some((_, value)) = get(table, "fs") {
            for (i, (item, span)) in self
                .tables(value, &format!("{at}.fs"))?
                .into_iter()
                .enumerate()
            {
                fs.push(self.fs_grant(item, span, &format!("{at}.fs[{i}]"), at, &params)?);
            }
        }
        let mut net = Vec::new();
        if let Some((_, value)) = get(table, "net") {
            for (i, (item, span)) in self
                .tables(value, &format!("{at}.net"))?
                .into_iter()
                .enumerate()
            {
                net.push(self.net_grant(item, span, &format!("{at}.net[{i}]"), at, &params)?);
            }
        }
        let limits = match get(table, "limits") {
            Some((_, value)) => self.limits(value, &format!("{at}.limits"))?,
            None => Limits::default(),
        };
        let mut mounts = Vec::new();
        if let Some((_, value)) = get(table, "mounts") {
            for (i, (item, span)) in self
                .tables(value, &format!("{at}.mounts"))?
                .into_iter()
                .enumerate()
            {
                mounts.push(self.mount(item, span, &format!("{at}.mounts[{i}]"), at, &params)?);
            }
        }
        let mut host_params: Vec<String> = Vec::new();
        for grant in &net {
            for name in grant.host.params() {
                if !host_params.iter().any(|p| p == name) {
                    host_params.push(name.to_owned());
                }
            }
        }
        Ok(ProfileTemplate {
            params,
            host_params,
            fs,
            net,
            limits,
            mounts,
        })
    }

    fn params(&self, value: &Value<'_>, at: &str) -> Result<Vec<String>, PolicyError> {
        let expected = "a list of parameter names";
        let mut params: Vec<String> = Vec::new();
        for item in self.array(value, at, expected)? {
            let name = self.string(item, at, expected)?;
            if !is_identifier(name) {
                return Err(self.error(
                    item.span(),
                    format!(
                        "{at} entries must be letters, digits and '_', not starting with a \
                         digit; found {name:?}"
                    ),
                ));
            }
            if params.iter().any(|p| p == name) {
                return Err(self.error(
                    item.span(),
                    format!("{at} declares {name:?} twice; remove one"),
                ));
            }
            params.push(name.to_owned());
        }
        Ok(params)
    }

    /// An array of tables (`[[at]]` or an inline array of inline tables), with each table's
    /// span (its header for `[[at]]`).
    fn tables<'a, 'i>(
        &self,
        value: &'a Value<'i>,
        at: &str,
    ) -> Result<Vec<(&'a DeTable<'i>, Range<usize>)>, PolicyError> {
        let expected = format!("an array of tables, written [[{at}]]");
        self.array(value, at, &expected)?
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Table(table) => Ok((table, item.span())),
                other => Err(self.error(
                    item.span(),
                    format!("{at} must be {expected}; found {}", describe(other)),
                )),
            })
            .collect()
    }

    fn fs_grant(
        &self,
        table: &DeTable<'_>,
        span: Range<usize>,
        at: &str,
        profile_at: &str,
        params: &[String],
    ) -> Result<FsTemplate, PolicyError> {
        self.check_keys(table, at, &["path", "scope", "rights"])?;
        let Some((_, path_value)) = get(table, "path") else {
            return Err(self.error(
                span,
                format!("{at} needs a path, e.g. path = \"/srv/data\""),
            ));
        };
        let raw = self.string(path_value, &format!("{at}.path"), "an absolute path string")?;
        let path = Template::parse(raw, params, profile_at)
            .map_err(|m| self.error(path_value.span(), format!("{at}.path {m}; found {raw:?}")))?;
        // Placeholders stand for one or more characters other than '/', so checking the path
        // with each one replaced by "p" finds every problem that does not depend on the values.
        let sample = path.render(&|_| "p".to_owned());
        let components = split_clean(&sample).map_err(|problem| {
            self.error(
                path_value.span(),
                format!("{at}.path must {}; found {raw:?}", problem.requirement()),
            )
        })?;

        let literal = match get(table, "scope") {
            None => false,
            Some((_, value)) => {
                let expected = "\"subtree\" or \"literal\"";
                match self.string(value, &format!("{at}.scope"), expected)? {
                    "subtree" => false,
                    "literal" => true,
                    other => {
                        return Err(self.error(
                            value.span(),
                            format!("{at}.scope must be {expected}; found {other:?}"),
                        ))
                    }
                }
            }
        };
        if literal && components.is_empty() {
            return Err(self.error(
                path_value.span(),
                format!("{at}.path must name a file for scope = \"literal\"; found {raw:?}"),
            ));
        }

        let Some((_, rights_value)) = get(table, "rights") else {
            return Err(self.error(
                span,
                format!("{at} needs rights, a list of {RIGHTS}, e.g. rights = [\"read\"]"),
            ));
        };
        let expected = format!("a list of {RIGHTS}");
        let rights_at = format!("{at}.rights");
        let mut rights = Rights::default();
        for item in self.array(rights_value, &rights_at, &expected)? {
            match self.string(item, &rights_at, &expected)? {
                "read" => rights.read = true,
                "write" => rights.write = true,
                "create" => rights.create = true,
                "delete" => rights.delete = true,
                "list" => rights.list = true,
                other => {
                    return Err(self.error(
                        item.span(),
                        format!("{rights_at} must be {expected}; found {other:?}"),
                    ))
                }
            }
        }
        if rights.is_empty() {
            return Err(self.error(
                rights_value.span(),
                format!("{rights_at} must not be empty; list at least one of {RIGHTS}"),
            ));
        }
        Ok(FsTemplate {
            path,
            literal,
            rights,
        })
    }

    /// `[[profiles.NAME.mounts]]`: `path` (clean, absolute, not `/`, placeholders allowed) and
    /// `access`, `"ro"` (the default) or `"rw"`.
    fn mount(
        &self,
        table: &DeTable<'_>,
        span: Range<usize>,
        at: &str,
        profile_at: &str,
        params: &[String],
    ) -> Result<MountTemplate, PolicyError> {
        self.check_keys(table, at, &["path", "access"])?;
        let Some((_, path_value)) = get(table, "path") else {
            return Err(self.error(
                span,
                format!("{at} needs a path, e.g. path = \"/usr/share/zoneinfo\""),
            ));
        };
        let raw = self.string(path_value, &format!("{at}.path"), "an absolute path string")?;
        let path = Template::parse(raw, params, profile_at)
            .map_err(|m| self.error(path_value.span(), format!("{at}.path {m}; found {raw:?}")))?;
        let sample = path.render(&|_| "p".to_owned());
        let components = split_clean(&sample).map_err(|problem| {
            self.error(
                path_value.span(),
                format!("{at}.path must {}; found {raw:?}", problem.requirement()),
            )
        })?;
        if components.is_empty() {
            return Err(self.error(
                path_value.span(),
                format!(
                    "{at}.path must not be \"/\"; mount the directories the program needs, not \
                     the whole host"
                ),
            ));
        }
        let writable = match get(table, "access") {
            None => false,
            Some((_, value)) => {
                let expected = "\"ro\" or \"rw\"";
                match self.string(value, &format!("{at}.access"), expected)? {
                    "ro" => false,
                    "rw" => true,
                    other => {
                        return Err(self.error(
                            value.span(),
                            format!("{at}.access must be {expected}; found {other:?}"),
                        ))
                    }
                }
            }
        };
        Ok(MountTemplate { path, writable })
    }

    fn net_grant(
        &self,
        table: &DeTable<'_>,
        span: Range<usize>,
        at: &str,
        profile_at: &str,
        params: &[String],
    ) -> Result<NetTemplate, PolicyError> {
        self.check_keys(
            table,
            at,
            &["scheme", "host", "port", "ports", "allow_private"],
        )?;
        let Some((_, scheme_value)) = get(table, "scheme") else {
            return Err(self.error(
                span,
                format!("{at} needs a scheme: \"http\", \"https\" or \"tcp\""),
            ));
        };
        let expected = "\"http\", \"https\" or \"tcp\"";
        let scheme = match self.string(scheme_value, &format!("{at}.scheme"), expected)? {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "tcp" => Scheme::Tcp,
            other => {
                return Err(self.error(
                    scheme_value.span(),
                    format!("{at}.scheme must be {expected}; found {other:?}"),
                ))
            }
        };

        let Some((_, host_value)) = get(table, "host") else {
            return Err(self.error(span, format!("{at} needs a host, {HOST_FORMS}")));
        };
        let raw = self.string(host_value, &format!("{at}.host"), "a host string")?;
        let host = Template::parse(raw, params, profile_at)
            .map_err(|m| self.error(host_value.span(), format!("{at}.host {m}; found {raw:?}")))?;
        if parse_host_pattern(&host.render(&|_| "example".to_owned())).is_none() {
            return Err(self.error(
                host_value.span(),
                format!("{at}.host must be {HOST_FORMS}; found {raw:?}"),
            ));
        }

        let ports = match (get(table, "port"), get(table, "ports")) {
            (Some(_), Some((ports_key, _))) => {
                return Err(self.error(
                    ports_key.span(),
                    format!("{at} has both port and ports; keep one"),
                ))
            }
            (Some((_, value)), None) => {
                vec![self.integer(value, &format!("{at}.port"), 1u16, u16::MAX)?]
            }
            (None, Some((_, value))) => {
                let ports_at = format!("{at}.ports");
                let items = self.array(value, &ports_at, "a list of ports")?;
                if items.is_empty() {
                    return Err(self.error(
                        value.span(),
                        format!("{ports_at} must not be empty; list at least one port"),
                    ));
                }
                let mut ports = Vec::with_capacity(items.len());
                for item in items {
                    let port =
                        self.integer(item, &format!("{ports_at} entries"), 1u16, u16::MAX)?;
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
                ports
            }
            (None, None) => match scheme.default_port() {
                Some(port) => vec![port],
                None => {
                    return Err(self.error(
                        span,
                        format!(
                            "{at} has scheme \"tcp\", which has no default port; add \
                             port = <1-65535> or ports = [...]"
                        ),
                    ))
                }
            },
        };

        let allow_private = match get(table, "allow_private") {
            Some((_, value)) => self.boolean(value, &format!("{at}.allow_private"))?,
            None => false,
        };
        Ok(NetTemplate {
            scheme,
            host,
            ports,
            allow_private,
        })
    }

    /// A byte count: a non-negative integer, or a string of digits and a binary unit
    /// (`"512MiB"`, `"1 GiB"`). Errors point at the value.
    fn bytes(&self, value: &Value<'_>, at: &str) -> Result<u64, PolicyError> {
        let fail = |problem: &str| {
            self.error(
                value.span(),
                format!(
                    "{at} must be a byte count: an integer, or a string such as \"512MiB\" \
                     with unit {SIZE_UNITS}{problem}; found {}",
                    describe(value.get_ref())
                ),
            )
        };
        match value.get_ref() {
            DeValue::Integer(integer) => i128::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| fail("")),
            DeValue::String(text) => parse_size(text.as_ref()).map_err(fail),
            _ => Err(fail("")),
        }
    }

    fn limits(&self, value: &Value<'_>, at: &str) -> Result<Limits, PolicyError> {
        let table = self.table(value, at)?;
        self.check_keys(
            table,
            at,
            &[
                "requests_per_second",
                "burst",
                "open_fds",
                "fetch_bytes",
                "fetch_timeout_ms",
                "memory_bytes",
                "processes",
                "cpu_seconds",
                "cpu_percent",
                "wall_ms",
                "file_size_bytes",
                "on_violation",
                "allow_processes",
            ],
        )?;
        let mut limits = Limits::default();
        let key_at = |key: &str| format!("{at}.{key}");
        if let Some((_, v)) = get(table, "requests_per_second") {
            limits.requests_per_second =
                self.integer(v, &key_at("requests_per_second"), 1, u32::MAX)?;
        }
        if let Some((_, v)) = get(table, "burst") {
            limits.burst = self.integer(v, &key_at("burst"), 1, u32::MAX)?;
        }
        if let Some((_, v)) = get(table, "open_fds") {
            limits.open_fds = self.integer(v, &key_at("open_fds"), 0, u32::MAX)?;
        }
        if let Some((_, v)) = get(table, "fetch_bytes") {
            limits.fetch_bytes = self.integer(v, &key_at("fetch_bytes"), 0, u64::MAX)?;
        }
        if let Some((_, v)) = get(table, "fetch_timeout_ms") {
            limits.fetch_timeout_ms = self.integer(v, &key_at("fetch_timeout_ms"), 1, u64::MAX)?;
        }
        if let Some((_, v)) = get(table, "memory_bytes") {
            let key = key_at("memory_bytes");
            let bytes = self.bytes(v, &key)?;
            if bytes != 0 && bytes < Limits::MIN_MEMORY_BYTES {
                // A limit this small cannot start a process: most likely a unit was left out.
                let hint = match v.get_ref() {
                    DeValue::Integer(_) => format!("; did you mean \"{bytes}MiB\"?"),
                    _ => format!(" ({bytes} bytes)"),
                };
                return Err(self.error(
                    v.span(),
                    format!(
                        "{key} must be 0 (no limit) or at least 1 MiB ({}); found {}{hint}",
                        Limits::MIN_MEMORY_BYTES,
                        describe(v.get_ref())
                    ),
                ));
            }
            limits.memory_bytes = bytes;
        }
        if let Some((_, v)) = get(table, "processes") {
            limits.processes = self.integer(v, &key_at("processes"), 1, Limits::MAX_PROCESSES)?;
        }
        if let Some((_, v)) = get(table, "cpu_seconds") {
            limits.cpu_seconds = self.integer(v, &key_at("cpu_seconds"), 0, u64::MAX)?;
        }
        if let Some((_, v)) = get(table, "cpu_percent") {
            limits.cpu_percent =
                self.integer(v, &key_at("cpu_percent"), 1, Limits::MAX_CPU_PERCENT)?;
        }
        if let Some((_, v)) = get(table, "wall_ms") {
            limits.wall_ms = self.integer(v, &key_at("wall_ms"), 0, u64::MAX)?;
        }
        if let Some((_, v)) = get(table, "file_size_bytes") {
            limits.file_size_bytes = self.bytes(v, &key_at("file_size_bytes"))?;
        }
        if let Some((_, v)) = get(table, "on_violation") {
            let key = key_at("on_violation");
            let expected = "\"kill\" or \"deny\"";
            limits.on_violation = match self.string(v, &key, expected)? {
                "kill" => OnViolation::Kill,
                "deny" => OnViolation::Deny,
                other => {
                    return Err(self.error(
                        v.span(),
                        format!("{key} must be {expected}; found {other:?}"),
                    ))
                }
            };
        }
        if let Some((_, v)) = get(table, "allow_processes") {
            limits.allow_processes = self.boolean(v, &key_at("allow_processes"))?;
        }
        Ok(limits)
    }
}

const SIZE_UNITS: &str = "B, KiB, MiB, GiB or TiB";

/// Parses `"<digits>[ ]<unit>"` with a binary unit, or bare digits (bytes). The error completes
/// the sentence "... must be a byte count ..." (it starts with "; ").
fn parse_size(text: &str) -> Result<u64, &'static str> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err("; the string must start with digits");
    }
    if unit.starts_with('.') {
        return Err("; the number must be whole (write \"1536MiB\", not \"1.5GiB\")");
    }
    let multiplier: u64 = match unit.strip_prefix(' ').unwrap_or(unit) {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err("; units are binary and case-sensitive (\"MiB\", not \"MB\" or \"M\")"),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or("; the value does not fit in 64 bits")
}
