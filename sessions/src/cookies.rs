//! [`CookieSettings`], uapi's `uapi.cookies.CookieSettings`.

use std::time::Duration;

use cookie::{time, Cookie};

/// The `SameSite` attribute of a session cookie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// `SameSite=Lax`, the default, as uapi's.
    #[default]
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

impl std::str::FromStr for SameSite {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "lax" => Ok(SameSite::Lax),
            "strict" => Ok(SameSite::Strict),
            "none" => Ok(SameSite::None),
            _ => Err(format!(
                "`{text}` is not a SameSite value; expected lax, strict or none"
            )),
        }
    }
}

/// How session cookies are written: uapi's `CookieSettings`, with its
/// defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sessions::{CookieSettings, SameSite};
///
/// let settings = CookieSettings {
///     max_age: Some(Duration::from_secs(3600)),
///     same_site: SameSite::Strict,
///     ..CookieSettings::default()
/// };
/// assert!(settings.http_only && settings.secure);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CookieSettings {
    /// `Max-Age`. Defaults to `None` (a browser-session cookie), as uapi's
    /// `CookieSettings.max_age`; signed-cookie sessions set 31 days, as
    /// uapi's `configure_secure_sessions`.
    pub max_age: Option<Duration>,
    /// `HttpOnly`. Defaults to `true`, as uapi's `CookieSettings.http_only`.
    pub http_only: bool,
    /// `Secure`. Defaults to `true`, as uapi's `CookieSettings.secure`.
    pub secure: bool,
    /// `Path`. Defaults to `None`, as uapi's `CookieSettings.path`.
    pub path: Option<String>,
    /// `Domain`. Defaults to `None`, as uapi's `CookieSettings.domain`.
    pub domain: Option<String>,
    /// `SameSite`. Defaults to [`SameSite::Lax`], as uapi's
    /// `CookieSettings.same_site`, and is written out even so.
    pub same_site: SameSite,
}

impl Default for CookieSettings {
    fn default() -> Self {
        CookieSettings {
            max_age: None,
            http_only: true,
            secure: true,
            path: None,
            domain: None,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieSettings {
    /// The cookie `name=value` with these attributes.
    pub fn cookie(&self, name: &str, value: String) -> Cookie<'static> {
        let mut cookie = self.base(name, value);
        if let Some(max_age) = self.max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie.set_max_age(time::Duration::seconds(seconds));
        }
        cookie
    }

    /// The cookie that deletes `name`: empty, `Max-Age=0`, an `Expires` in
    /// the past, and the same `Path` and `Domain`, so the browser drops the
    /// very cookie that was set.
    pub fn removal(&self, name: &str) -> Cookie<'static> {
        let mut cookie = self.base(name, String::new());
        cookie.set_max_age(time::Duration::ZERO);
        cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH);
        cookie
    }

    fn base(&self, name: &str, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.to_owned(), value);
        cookie.set_http_only(self.http_only);
        cookie.set_secure(self.secure);
        if let Some(path) = &self.path {
            cookie.set_path(path.clone());
        }
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_same_site(match self.same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        });
        cookie
    }
}

/// A session cookie's `Set-Cookie` value, made by concatenation: `name=value`, then the
/// attributes, which depend on the settings alone and are formatted once, when the session
/// configuration is made. The text is that of
/// [`format_set_cookie`](crate::request::format_set_cookie) for
/// `settings.cookie(name, value)` (a test checks it), without building that cookie on every
/// login: that saved about 680 instructions per signed-cookie login in callgrind.
#[derive(Debug)]
pub(crate) struct SetCookieTemplate {
    settings: CookieSettings,
    /// `name=`: the name is all but its last byte.
    prefix: String,
    /// Everything after the value: `; HttpOnly; SameSite=Lax; Max-Age=2678400`, say.
    attributes: String,
    /// `Path` and `Domain` as the cookie gives them (`Cookie::domain` drops a leading `.`):
    /// with the name, what a later cookie must match to replace this one.
    path: Option<String>,
    domain: Option<String>,
}

impl SetCookieTemplate {
    pub(crate) fn new(settings: &CookieSettings, name: &str) -> Self {
        let cookie = settings.cookie(name, String::new());
        let empty = crate::request::format_set_cookie(&cookie);
        let attributes = empty
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .expect("a Set-Cookie value starts with `name=`")
            .to_owned();
        SetCookieTemplate {
            settings: settings.clone(),
            prefix: format!("{name}="),
            attributes,
            path: cookie.path().map(str::to_owned),
            domain: cookie.domain().map(str::to_owned),
        }
    }

    /// The cookie's name.
    pub(crate) fn name(&self) -> &str {
        &self.prefix[..self.prefix.len() - 1]
    }

    /// Name, path and domain, as [`Cookie`]'s accessors give them for the cookie this makes.
    pub(crate) fn key(&self) -> (&str, Option<&str>, Option<&str>) {
        (self.name(), self.path.as_deref(), self.domain.as_deref())
    }

    /// The cookie that deletes this one (see [`CookieSettings::removal`]).
    pub(crate) fn removal(&self) -> Cookie<'static> {
        self.settings.removal(self.name())
    }

    /// The length of the `Set-Cookie` value for a value of `value_len` bytes.
    pub(crate) fn len(&self, value_len: usize) -> usize {
        self.prefix.len() + value_len + self.attributes.len()
    }

    /// The `Set-Cookie` value for the value that is `pieces` one after the other, in one
    /// allocation of its exact size.
    pub(crate) fn format<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let value_len = pieces.iter().map(|piece| piece.as_ref().len()).sum();
        let mut formatted = String::with_capacity(self.len(value_len));
        formatted.push_str(&self.prefix);
        for piece in pieces {
            formatted.push_str(piece.as_ref());
        }
        formatted.push_str(&self.attributes);
        formatted
    }

    /// `name=`: what a `Set-Cookie` value of this cookie starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What a `Set-Cookie` value of this cookie ends with, after the value.
    pub(crate) fn attributes(&self) -> &str {
        &self.attributes
    }

    /// The value in a `Set-Cookie` value this template formatted (`None` for one it did not).
    pub(crate) fn value_of<'a>(&self, formatted: &'a [u8]) -> Option<&'a [u8]> {
        formatted
            .strip_prefix(self.prefix.as_bytes())?
            .strip_suffix(self.attributes.as_bytes())
    }

    /// The cookie itself, for [`ResponseCookies::get`](crate::ResponseCookies::get).
    pub(crate) fn cookie(&self, value: &str) -> Cookie<'static> {
        self.settings.cookie(self.name(), value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_uapis_and_same_site_is_written() {
        let text = CookieSettings::default()
            .cookie("session", "v".into())
            .to_string();
        assert_eq!(text, "session=v; HttpOnly; SameSite=Lax; Secure");
    }

    #[test]
    fn removal_keeps_path_and_domain() {
        let settings = CookieSettings {
            path: Some("/app".into()),
            domain: Some("example.com".into()),
            ..CookieSettings::default()
        };
        let text = settings.removal("session").to_string();
        assert!(text.contains("Path=/app"), "{text}");
        assert!(text.contains("Domain=example.com"), "{text}");
        assert!(text.contains("Max-Age=0"), "{text}");
    }

    proptest::proptest! {
        /// The template writes what the cookie it stands for would, for any settings.
        #[test]
        fn template_writes_the_cookie(
            name in "[a-z_]{1,10}",
            value in "[A-Za-z0-9._:-]{0,40}",
            max_age in proptest::option::of(0..10_000_000_u64),
            http_only in proptest::bool::ANY,
            secure in proptest::bool::ANY,
            path in proptest::option::of("/[a-z/]{0,8}"),
            domain in proptest::option::of("[a-z]{1,6}[.]test"),
            same_site in proptest::sample::select(vec![SameSite::Lax, SameSite::Strict, SameSite::None]),
        ) {
            let settings = CookieSettings {
                max_age: max_age.map(Duration::from_secs),
                http_only,
                secure,
                path,
                domain,
                same_site,
            };
            let template = SetCookieTemplate::new(&settings, &name);
            let cookie = settings.cookie(&name, value.clone());
            let formatted = template.format(&[&value]);
            proptest::prop_assert_eq!(&formatted, &cookie.to_string());
            proptest::prop_assert_eq!(formatted.len(), template.len(value.len()));
            proptest::prop_assert_eq!(formatted.capacity(), formatted.len());
            proptest::prop_assert_eq!(template.cookie(&value), cookie);
            proptest::prop_assert_eq!(template.value_of(formatted.as_bytes()), Some(value.as_bytes()));
        }
    }

    #[test]
    fn max_age_is_written() {
        let settings = CookieSettings {
            max_age: Some(Duration::from_secs(2_678_400)),
            ..CookieSettings::default()
        };
        assert!(settings
            .cookie("s", "v".into())
            .to_string()
            .contains("Max-Age=2678400"));
    }
}
