//! Credentials for Elasticsearch, from the environment, a file only the service can read,
//! or (least preferred) the configuration file.

use std::path::Path;

use crate::support::file::read_regular_capped;

use thiserror::Error;

/// How requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: String,
    },
    /// The `encoded` form of an API key (base64 of `id:api_key`).
    ApiKey(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::ApiKey(_) => f.write_str("ApiKey(***)"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("cannot read the secret in {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("both a password and an API key are configured; choose one")]
    Both,
    #[error("a password is configured but no username")]
    NoUsername,
}

/// The environment variables that override the configured secrets.
pub const PASSWORD_ENV: &str = "EDGE_AGENT_ES_PASSWORD";
pub const API_KEY_ENV: &str = "EDGE_AGENT_ES_API_KEY";

impl Auth {
    /// Resolves the secrets: the environment wins over a file, a file over inline text.
    pub fn resolve(
        username: Option<&str>,
        password: Option<&str>,
        password_file: Option<&Path>,
        api_key: Option<&str>,
        api_key_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        let password = secret(env(PASSWORD_ENV), password_file, password)?;
        let api_key = secret(env(API_KEY_ENV), api_key_file, api_key)?;
        match (password, api_key) {
            (Some(_), Some(_)) => Err(AuthError::Both),
            (Some(password), None) => match username {
                Some(username) => Ok(Auth::Basic {
                    username: username.to_owned(),
                    password,
                }),
                None => Err(AuthError::NoUsername),
            },
            (None, Some(key)) => Ok(Auth::ApiKey(key)),
            (None, None) => Ok(Auth::None),
        }
    }
}

pub use crate::support::file::SECRET_FILE_MAX_BYTES;

fn secret(
    from_env: Option<String>,
    file: Option<&Path>,
    inline: Option<&str>,
) -> Result<Option<String>, AuthError> {
    if let Some(value) = from_env.filter(|v| !v.is_empty()) {
        return Ok(Some(value));
    }
    if let Some(path) = file {
        let read_error = |reason: String| AuthError::Read {
            path: path.display().to_string(),
            reason,
        };
        let bytes = read_regular_capped(path, SECRET_FILE_MAX_BYTES).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| read_error("not UTF-8".into()))?;
        // A BOM (Notepad) and the line's end (CRLF too) are the file's, not the secret's:
        // kept, they would be sent, and every request refused with no word of why.
        let text = crate::support::text::without_bom(&text);
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(inline.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_beats_file_beats_inline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let none = |_: &str| None;
        let env = |name: &str| (name == PASSWORD_ENV).then(|| "from-env".to_owned());
        let basic = |password: &str| Auth::Basic {
            username: "u".into(),
            password: password.into(),
        };
        assert_eq!(
            Auth::resolve(Some("u"), Some("inline"), None, None, None, none),
            Ok(basic("inline"))
        );
        assert_eq!(
            Auth::resolve(Some("u"), Some("inline"), Some(&file), None, None, none),
            Ok(basic("from-file"))
        );
        assert_eq!(
            Auth::resolve(Some("u"), Some("inline"), Some(&file), None, None, env),
            Ok(basic("from-env"))
        );
        assert_eq!(
            Auth::resolve(None, None, None, Some("k"), None, none),
            Ok(Auth::ApiKey("k".into()))
        );
        assert_eq!(
            Auth::resolve(None, Some("p"), None, None, None, none),
            Err(AuthError::NoUsername)
        );
        assert_eq!(
            Auth::resolve(Some("u"), Some("p"), None, Some("k"), None, none),
            Err(AuthError::Both)
        );
        assert!(!format!("{:?}", basic("secret")).contains("secret"));
    }

    /// A secret file saved by Windows' Notepad: a BOM first and CRLF last. Neither is
    /// part of the secret.
    #[test]
    fn a_bom_and_crlf_are_not_part_of_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "\u{feff}s3cret\r\n").unwrap();
        let none = |_: &str| None;
        assert_eq!(
            Auth::resolve(Some("u"), None, Some(&file), None, None, none),
            Ok(Auth::Basic {
                username: "u".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            Auth::resolve(None, None, None, None, Some(&file), none),
            Ok(Auth::ApiKey("s3cret".into()))
        );
    }
}
