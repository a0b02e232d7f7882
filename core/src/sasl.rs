//! SASL on the client port (opcode 102, `GetSASLRequest` → `SetSASLResponse`): the
//! DIGEST-MD5 mechanism (RFC 2831, qop `auth`) as a ZooKeeper 3.8 server runs it, which is
//! the JDK's DIGEST-MD5 server created with protocol `zookeeper` and server name
//! `zk-sasl-md5` (`SecurityUtils.createSaslServer`), fed by `SaslServerCallbackHandler`.
//!
//! * [`SaslConfig`] is the server's login: the users and passwords of the JAAS `Server`
//!   section (`user_<name>="<password>"` options) and the properties that shape the
//!   outcome (`zookeeper.superUser*`, the super user's password, failed-client policy).
//! * [`DigestMd5Server`] is one connection's exchange, a state machine over tokens: the
//!   first token (empty from every client) is answered with the challenge
//!   `realm="zk-sasl-md5",nonce="…",charset=utf-8,algorithm=md5-sess`; the client's
//!   digest-response is checked and answered with `rspauth=…`, and the connection is then
//!   authenticated as `sasl:<user>`. Any fault is a [`SaslError`] whose text is the JDK's.
//!
//! Kerberos (GSSAPI) is not offered: a server whose JAAS section logs in with anything but
//! ZooKeeper's `DigestLoginModule` refuses to start (ZooKeeper would need a KDC), and a
//! GSSAPI client's tokens fail the DIGEST-MD5 exchange with AuthFailed, as they do against
//! a DIGEST-MD5 ZooKeeper server.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use md5::{Digest, Md5};
use tracing::{error, info, warn};

use crate::jaas;

/// The JDK server's limit on one client token (`MAX_RESPONSE_LENGTH`).
const MAX_RESPONSE_LENGTH: usize = 4096;
/// `zookeeper/zk-sasl-md5`: ZooKeeper's DIGEST-MD5 protocol and server name, which is
/// also the only realm offered.
pub const PROTOCOL: &str = "zookeeper";
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// The login module of a DIGEST-MD5 `Server` section.
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
/// `zookeeper.sasl.serverconfig`: the JAAS section the server reads (default `Server`).
pub const SERVER_SECTION_PROPERTY: &str = "zookeeper.sasl.serverconfig";
const SUPER_USER_PROPERTY: &str = "zookeeper.superUser";
const SUPER_PASSWORD_PROPERTY: &str = "zookeeper.SASLAuthenticationProvider.superPassword";
const ALLOW_FAILED_PROPERTY: &str = "zookeeper.allowSaslFailedClients";

/// The server's SASL login (`ServerCnxnFactory.configureSaslLogin` and the callback
/// handler it builds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslConfig {
    /// user → password, from every `user_<name>` option of the section.
    users: HashMap<String, String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of user
    /// `super`, in place of the JAAS one.
    super_password: Option<String>,
    /// The values of `zookeeper.superUser` and every `zookeeper.superUser.<x>`: a SASL
    /// identity equal to one of them is also the super user.
    super_users: Vec<String>,
    /// `zookeeper.allowSaslFailedClients`: a failed exchange is answered OK (with no
    /// token) and the connection stays, unauthenticated.
    pub allow_failed_clients: bool,
}

/// Why the server cannot start with the SASL configuration it was given; the texts are
/// ZooKeeper's, which fails its start-up in the same cases.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("No JAAS configuration section named '{section}' was found{}{} ({cause})",
        .file.as_ref().map(|f| format!(" in '{f}'.")).unwrap_or_default(),
        if *.section_property_set { format!(" But {SERVER_SECTION_PROPERTY} was set.") } else { String::new() })]
    NoConfiguration {
        section: String,
        file: Option<String>,
        section_property_set: bool,
        cause: String,
    },
    #[error("Could not configure server because SASL configuration did not allow the  ZooKeeper server to authenticate itself properly: javax.security.auth.login.LoginException: {0}")]
    Login(String),
}

impl SaslConfig {
    /// A login with these users and no special properties.
    pub fn with_users<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> SaslConfig {
        SaslConfig {
            users: users
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            ..SaslConfig::default()
        }
    }

    /// `configureSaslLogin`: SASL is on when the JAAS file (`jaas_file`, from
    /// `java.security.auth.login.config`) has the section named by
    /// `zookeeper.sasl.serverconfig` (default `Server`). A file that cannot be read or
    /// parsed stops the server, as does a section whose login would fail; a readable file
    /// without the section leaves SASL off (`Ok(None)`), as in ZooKeeper.
    pub fn configure(
        jaas_file: Option<&Path>,
        props: &BTreeMap<String, String>,
    ) -> Result<Option<SaslConfig>, LoginError> {
        let section_property = props.get(SERVER_SECTION_PROPERTY);
        let section = section_property.map_or("Server", String::as_str).to_owned();
        let Some(file) = jaas_file else {
            // No login configuration at all: the JDK fails to load one, which is fatal
            // only when a section was asked for by name.
            return match section_property {
                None => Ok(None),
                Some(_) => Err(LoginError::NoConfiguration {
                    section,
                    file: None,
                    section_property_set: true,
                    cause: "no JAAS configuration file (java.security.auth.login.config)".into(),
                }),
            };
        };
        let property = |name: &str| java_property(props, name);
        let cfg = jaas::load(file, &property).map_err(|e| LoginError::NoConfiguration {
            section: section.clone(),
            file: Some(file.display().to_string()),
            section_property_set: section_property.is_some(),
            cause: e.to_string(),
        })?;
        let Some(entries) = cfg.section(&section) else {
            return Ok(None);
        };
        let mut login = SaslConfig::from_section(entries)?;
        login.apply_properties(props);
        Ok(Some(login))
    }

    /// The users of a JAAS section (`user_<name>` options of all its entries), after
    /// checking that its login can succeed here: only `DigestLoginModule` entries, which
    /// do nothing on a server.
    pub fn from_section(entries: &[jaas::LoginEntry]) -> Result<SaslConfig, LoginError> {
        let mut users = HashMap::new();
        for e in entries {
            match e.module.as_str() {
                DIGEST_LOGIN_MODULE => {}
                "com.sun.security.auth.module.Krb5LoginModule" => {
                    return Err(LoginError::Login(format!(
                        "{} is Kerberos (GSSAPI), which geokeeper does not offer; use {DIGEST_LOGIN_MODULE} (DIGEST-MD5)",
                        e.module
                    )))
                }
                other => {
                    return Err(LoginError::Login(format!(
                        "No LoginModule found for {other}"
                    )))
                }
            }
            for (k, v) in &e.options {
                if let Some(user) = k.strip_prefix("user_") {
                    users.insert(user.to_owned(), v.clone());
                }
            }
        }
        Ok(SaslConfig {
            users,
            ..SaslConfig::default()
        })
    }

    /// Takes the SASL-related Java system properties.
    pub fn apply_properties(&mut self, props: &BTreeMap<String, String>) {
        self.super_password = props.get(SUPER_PASSWORD_PROPERTY).cloned();
        self.super_users = props
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(SUPER_USER_PROPERTY)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .map(|(_, v)| v.clone())
            .collect();
        // `Boolean.getBoolean`.
        self.allow_failed_clients = props
            .get(ALLOW_FAILED_PROPERTY)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    }

    /// `ZooKeeperServer.isSaslSuperUser`.
    pub fn is_super_user(&self, id: &str) -> bool {
        !id.is_empty() && self.super_users.iter().any(|s| s == id)
    }

    /// `SaslServerCallbackHandler`'s password for `user`: only users of the section have
    /// one; `super` takes the superPassword property when it is set.
    fn password(&self, user: &str) -> Option<&str> {
        let pw = self.users.get(user)?;
        if user == "super" {
            if let Some(p) = &self.super_password {
                return Some(p);
            }
        }
        Some(pw)
    }
}

/// A Java system property as a JAAS file may name it: the configured properties first,
/// then the few the JVM always has that such files use.
fn java_property(props: &BTreeMap<String, String>, name: &str) -> Option<String> {
    if let Some(v) = props.get(name) {
        return Some(v.clone());
    }
    match name {
        "user.home" => std::env::var("HOME").ok(),
        "user.name" => std::env::var("USER").ok(),
        "user.dir" => std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string()),
        "file.separator" => Some("/".into()),
        "java.io.tmpdir" => Some(std::env::temp_dir().display().to_string()),
        _ => None,
    }
}

/// A failed exchange. The text is the JDK's `SaslException` message, which ZooKeeper logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(pub String);

fn violation(what: &str) -> SaslError {
    SaslError(format!(
        "DIGEST-MD5: digest response format violation. {what}"
    ))
}

/// What one client token yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this token and wait for the next.
    Challenge(Vec<u8>),
    /// Send this last token (`rspauth=…`); the connection is authenticated as
    /// `sasl:<authorization_id>`.
    Complete {
        token: Vec<u8>,
        authorization_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Challenged,
    /// Done, or failed: any further token is refused.
    Over,
}

/// One connection's DIGEST-MD5 exchange (the JDK's `DigestMD5Server`).
#[derive(Debug, Clone)]
pub struct DigestMd5Server {
    step: Step,
    nonce: String,
}

/// A fresh server nonce: 30 random bytes in base64, 40 characters, as the JDK makes it.
pub fn random_nonce() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut raw = [0u8; 30];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The directives a digest-response may carry (RFC 2831 §2.1.2), as the JDK server knows
/// them. The nonce count is known only as `nonce-count`, so the `nc` every client sends
/// is ignored and the count is taken to be 1, as the JDK does.
const DIRECTIVES: [&str; 13] = [
    "username",
    "realm",
    "nonce",
    "cnonce",
    "nonce-count",
    "qop",
    "digest-uri",
    "response",
    "maxbuf",
    "charset",
    "cipher",
    "authzid",
    "auth-param",
];

type Directives = [Option<Vec<u8>>; 13];

fn directive<'a>(d: &'a Directives, name: &str) -> Option<&'a [u8]> {
    let i = DIRECTIVES.iter().position(|k| *k == name)?;
    d[i].as_deref()
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses `name=value,name="quoted \" value",…` (RFC 2831 §7.1 lists, linear white space
/// allowed around elements, empty elements skipped). Directive names are matched without
/// regard to case; unknown ones are ignored; a known one given twice is an error.
fn parse_directives(buf: &[u8]) -> Result<Directives, SaslError> {
    let mut out: Directives = Default::default();
    let mut i = 0;
    let skip_lws = |mut i: usize| {
        while i < buf.len() && is_lws(buf[i]) {
            i += 1;
        }
        i
    };
    let mut store = |key: &[u8], value: Vec<u8>| -> Result<(), SaslError> {
        let key = String::from_utf8_lossy(key);
        if let Some(pos) = DIRECTIVES.iter().position(|k| k.eq_ignore_ascii_case(&key)) {
            if out[pos].is_some() {
                return Err(SaslError(format!(
                    "DIGEST-MD5: peer sent more than one {key} directive: {}",
                    String::from_utf8_lossy(&value)
                )));
            }
            out[pos] = Some(value);
        }
        Ok(())
    };
    i = skip_lws(i);
    while i < buf.len() {
        if buf[i] == b',' {
            i = skip_lws(i + 1);
            continue;
        }
        let key_start = i;
        while i < buf.len() && buf[i] != b'=' && buf[i] != b',' && !is_lws(buf[i]) {
            i += 1;
        }
        let key = &buf[key_start..i];
        i = skip_lws(i);
        if i >= buf.len() || buf[i] != b'=' {
            return Err(SaslError(format!(
                "'=' expected after key: {}",
                String::from_utf8_lossy(key)
            )));
        }
        if key.is_empty() {
            return Err(SaslError("Empty directive key".into()));
        }
        i = skip_lws(i + 1);
        if i >= buf.len() {
            return Err(SaslError(format!(
                "Valueless directive found: {}",
                String::from_utf8_lossy(key)
            )));
        }
        let mut value = Vec::new();
        if buf[i] == b'"' {
            i += 1;
            loop {
                match buf.get(i) {
                    None => {
                        return Err(SaslError(format!(
                            "Unmatched quote found for directive: {} with value: {}",
                            String::from_utf8_lossy(key),
                            String::from_utf8_lossy(&value)
                        )))
                    }
                    Some(b'\\') if i + 1 < buf.len() => {
                        value.push(buf[i + 1]);
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            i = skip_lws(i);
            if i < buf.len() && buf[i] != b',' {
                return Err(SaslError(format!(
                    "Expecting comma or linear whitespace after quoted string: \"{}\"",
                    String::from_utf8_lossy(&value)
                )));
            }
        } else {
            while i < buf.len() && buf[i] != b',' && !is_lws(buf[i]) {
                value.push(buf[i]);
                i += 1;
            }
        }
        store(key, value)?;
        i = skip_lws(i);
    }
    Ok(out)
}

/// A string as DIGEST-MD5 hashes it: ISO 8859-1 when every character fits, else UTF-8
/// (RFC 2831 §2.1.2.1; the JDK's `stringToByte_8859_1`).
fn latin1_or_utf8(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) <= 0xFF) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs of a response-value (RFC 2831 §2.1.2.1), as the server knows them.
struct ResponseInputs<'a> {
    digest_uri: &'a str,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a [u8],
    cnonce: &'a [u8],
    authzid: Option<&'a [u8]>,
}

impl ResponseInputs<'_> {
    /// `HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))))` with qop `auth` and nc 1;
    /// `method` is `AUTHENTICATE` for the client's response and empty for rspauth.
    fn value(&self, method: &str) -> String {
        let a2 = format!("{method}:{}", self.digest_uri);
        let ha2 = hex(&Md5::digest(a2.as_bytes()));
        let mut secret = latin1_or_utf8(self.username);
        secret.push(b':');
        secret.extend(latin1_or_utf8(self.realm));
        secret.push(b':');
        secret.extend(latin1_or_utf8(self.password));
        let mut a1 = Md5::digest(&secret).to_vec();
        a1.push(b':');
        a1.extend_from_slice(self.nonce);
        a1.push(b':');
        a1.extend_from_slice(self.cnonce);
        if let Some(z) = self.authzid {
            a1.push(b':');
            a1.extend_from_slice(z);
        }
        let ha1 = hex(&Md5::digest(&a1));
        let mut kd = Vec::new();
        kd.extend_from_slice(ha1.as_bytes());
        kd.push(b':');
        kd.extend_from_slice(self.nonce);
        kd.extend_from_slice(b":00000001:");
        kd.extend_from_slice(self.cnonce);
        kd.extend_from_slice(b":auth:");
        kd.extend_from_slice(ha2.as_bytes());
        hex(&Md5::digest(&kd))
    }
}

/// `SaslServerCallbackHandler.handleAuthorizeCallback`: the identity is rebuilt from the
/// authentication id, so a client-supplied authzid is ignored. A name with no `@` is
/// its own Kerberos short name. One with a realm would go through the
/// `auth_to_local` rules, and with no Kerberos realm configured (there is no KDC here)
/// no rule applies: ZooKeeper logs an error and keeps the authorization id.
fn authorized_id(authentication_id: &str, authorization_id: &str) -> Result<String, SaslError> {
    if !authentication_id.contains('@') {
        info!("Setting authorizedID: {authentication_id}");
        return Ok(authentication_id.to_owned());
    }
    if !crate::acl::Provider::Sasl.is_valid(authentication_id) {
        return Err(SaslError(format!(
            "Malformed Kerberos name: {authentication_id}"
        )));
    }
    error!("Failed to set name based on Kerberos authentication rules.");
    Ok(authorization_id.to_owned())
}

impl DigestMd5Server {
    /// An exchange that will challenge with `nonce` (see [`random_nonce`]).
    pub fn new(nonce: impl Into<String>) -> DigestMd5Server {
        DigestMd5Server {
            step: Step::Start,
            nonce: nonce.into(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.step == Step::Over
    }

    /// `SaslServer.evaluateResponse`: the next server token for the client's `token`.
    pub fn evaluate(&mut self, login: &SaslConfig, token: &[u8]) -> Result<Outcome, SaslError> {
        if token.len() > MAX_RESPONSE_LENGTH {
            return Err(SaslError(format!(
                "DIGEST-MD5: Invalid digest response length. Got:  {} Expected < {MAX_RESPONSE_LENGTH}",
                token.len()
            )));
        }
        match self.step {
            // The first token is ignored: DIGEST-MD5 has no initial response.
            Step::Start => {
                self.step = Step::Challenged;
                Ok(Outcome::Challenge(
                    format!(
                        "realm=\"{SERVER_NAME}\",nonce=\"{}\",charset=utf-8,algorithm=md5-sess",
                        self.nonce
                    )
                    .into_bytes(),
                ))
            }
            Step::Challenged => {
                self.step = Step::Over;
                self.validate(login, token)
            }
            Step::Over => Err(SaslError("DIGEST-MD5: Server at illegal state".into())),
        }
    }

    /// Checks a digest-response, in the JDK server's order (so a response with several
    /// faults reports the same one).
    fn validate(&self, login: &SaslConfig, token: &[u8]) -> Result<Outcome, SaslError> {
        let d = parse_directives(token)?;
        let text = |name| directive(&d, name).map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(cs) = text("charset") {
            if cs != "utf-8" {
                return Err(violation(&format!("Incompatible charset value: {cs}")));
            }
        }
        if let Some(mb) = text("maxbuf") {
            if mb.parse::<i32>().is_err() {
                return Err(SaslError(format!("For input string: \"{mb}\"")));
            }
        }
        let username = text("username").ok_or_else(|| violation("Missing username."))?;
        let realm = text("realm").unwrap_or_default();
        if realm != SERVER_NAME {
            return Err(violation(&format!("Nonexistent realm: {realm}")));
        }
        let nonce = directive(&d, "nonce").ok_or_else(|| violation("Missing nonce."))?;
        if nonce != self.nonce.as_bytes() {
            return Err(violation("Mismatched nonce."));
        }
        let cnonce = directive(&d, "cnonce").ok_or_else(|| violation("Missing cnonce."))?;
        if let Some(nc) = text("nonce-count") {
            if i64::from_str_radix(&nc, 16).ok() != Some(1) {
                return Err(violation(&format!("Nonce count does not match: {nc}")));
            }
        }
        let qop = text("qop").unwrap_or_else(|| "auth".into());
        match qop.as_str() {
            "auth" => {}
            "auth-int" | "auth-conf" => {
                return Err(SaslError(format!(
                    "DIGEST-MD5: server does not support  qop: {qop}"
                )))
            }
            _ => return Err(violation(&format!("Invalid QOP: {qop}"))),
        }
        let expected_uri = format!("{PROTOCOL}/{SERVER_NAME}");
        let digest_uri = text("digest-uri");
        let digest_uri = match digest_uri {
            Some(u) if u.eq_ignore_ascii_case(&expected_uri) => u,
            other => {
                return Err(violation(&format!(
                    "Mismatched URI: {}; expecting: {expected_uri}",
                    other.as_deref().unwrap_or("null")
                )))
            }
        };
        let response = directive(&d, "response").ok_or_else(|| {
            SaslError("DIGEST-MD5: digest response format  violation. Missing response.".into())
        })?;
        let authzid = directive(&d, "authzid");
        let authorization = authzid
            .map(|z| String::from_utf8_lossy(z).into_owned())
            .unwrap_or_else(|| username.clone());
        if !login.users.contains_key(&username) {
            warn!("User '{username}' not found in list of DIGEST-MD5 authenticateable users.");
        }
        let password = login.password(&username).ok_or_else(|| {
            SaslError(format!(
                "DIGEST-MD5: cannot acquire password for {username} in realm : {realm}"
            ))
        })?;
        let inputs = ResponseInputs {
            digest_uri: &digest_uri,
            username: &username,
            realm: &realm,
            password,
            nonce,
            cnonce,
            authzid,
        };
        if response != inputs.value("AUTHENTICATE").as_bytes() {
            return Err(violation("Mismatched response."));
        }
        info!(
            "Successfully authenticated client: authenticationID={username};  authorizationID={authorization}."
        );
        let authorization_id = authorized_id(&username, &authorization)?;
        Ok(Outcome::Complete {
            token: format!("rspauth={}", inputs.value("")).into_bytes(),
            authorization_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "OA6MG9tEQGm2hh";

    /// A client response computed independently of the server code, from RFC 2831's
    /// formulas.
    fn client_response(
        user: &str,
        pw: &str,
        cnonce: &str,
        uri: &str,
        authzid: Option<&str>,
    ) -> String {
        let h = |b: &[u8]| Md5::digest(b).to_vec();
        let mut a1 = h(format!("{user}:{SERVER_NAME}:{pw}").as_bytes());
        a1.extend_from_slice(format!(":{NONCE}:{cnonce}").as_bytes());
        if let Some(z) = authzid {
            a1.extend_from_slice(format!(":{z}").as_bytes());
        }
        let ha1 = hex(&h(&a1));
        let ha2 = hex(&h(format!("AUTHENTICATE:{uri}").as_bytes()));
        let resp = hex(&h(
            format!("{ha1}:{NONCE}:00000001:{cnonce}:auth:{ha2}").as_bytes()
        ));
        let mut s = format!(
            "charset=utf-8,username=\"{user}\",realm=\"{SERVER_NAME}\",nonce=\"{NONCE}\",nc=00000001,cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={resp},qop=auth"
        );
        if let Some(z) = authzid {
            s.push_str(&format!(",authzid=\"{z}\""));
        }
        s
    }

    fn login() -> SaslConfig {
        SaslConfig::with_users([("bob", "bobsecret"), ("super", "adminsecret")])
    }

    fn challenged() -> DigestMd5Server {
        let mut s = DigestMd5Server::new(NONCE);
        let Outcome::Challenge(c) = s.evaluate(&login(), b"").unwrap() else {
            panic!("no challenge");
        };
        assert_eq!(
            String::from_utf8(c).unwrap(),
            format!("realm=\"zk-sasl-md5\",nonce=\"{NONCE}\",charset=utf-8,algorithm=md5-sess")
        );
        s
    }

    #[test]
    fn rfc_2831_example_values() {
        // RFC 2831 §4: chris/secret at elwood.innosoft.com.
        let inputs = ResponseInputs {
            digest_uri: "imap/elwood.innosoft.com",
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: b"OA6MG9tEQGm2hh",
            cnonce: b"OA6MHXh6VqTrRk",
            authzid: None,
        };
        assert_eq!(
            inputs.value("AUTHENTICATE"),
            "d388dad90d4bbd760a152321f2143af7"
        );
        assert_eq!(inputs.value(""), "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn a_good_response_completes_with_rspauth_and_the_user_id() {
        let mut s = challenged();
        let r = client_response("bob", "bobsecret", "c1", "zookeeper/zk-sasl-md5", None);
        let Outcome::Complete {
            token,
            authorization_id,
        } = s.evaluate(&login(), r.as_bytes()).unwrap()
        else {
            panic!("not complete");
        };
        assert_eq!(authorization_id, "bob");
        let token = String::from_utf8(token).unwrap();
        assert!(
            token.starts_with("rspauth=") && token.len() == 40,
            "{token}"
        );
        assert!(s.is_complete());
        assert_eq!(
            s.evaluate(&login(), b"").unwrap_err().0,
            "DIGEST-MD5: Server at illegal state"
        );
    }

    #[test]
    fn the_authzid_is_hashed_but_the_identity_is_the_user() {
        // Verified on 3.8.0: authzid carol → id sasl:bob.
        let mut s = challenged();
        let r = client_response(
            "bob",
            "bobsecret",
            "c1",
            "zookeeper/zk-sasl-md5",
            Some("carol"),
        );
        match s.evaluate(&login(), r.as_bytes()).unwrap() {
            Outcome::Complete {
                authorization_id, ..
            } => assert_eq!(authorization_id, "bob"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn faults_give_the_jdk_messages() {
        let uri = "zookeeper/zk-sasl-md5";
        let cases = [
            (client_response("bob", "wrong", "c", uri, None), "DIGEST-MD5: digest response format violation. Mismatched response."),
            (client_response("nobody", "x", "c", uri, None), "DIGEST-MD5: cannot acquire password for nobody in realm : zk-sasl-md5"),
            (client_response("bob", "bobsecret", "c", "zookeeper/localhost", None), "DIGEST-MD5: digest response format violation. Mismatched URI: zookeeper/localhost; expecting: zookeeper/zk-sasl-md5"),
            (client_response("bob", "bobsecret", "c", uri, None).replace(NONCE, "other"), "DIGEST-MD5: digest response format violation. Mismatched nonce."),
            (client_response("bob", "bobsecret", "c", uri, None).replace("charset=utf-8", "charset=latin1"), "DIGEST-MD5: digest response format violation. Incompatible charset value: latin1"),
            (client_response("bob", "bobsecret", "c", uri, None).replace("qop=auth", "qop=auth-conf"), "DIGEST-MD5: server does not support  qop: auth-conf"),
            (client_response("bob", "bobsecret", "c", uri, None).replace("realm=\"zk-sasl-md5\",", ""), "DIGEST-MD5: digest response format violation. Nonexistent realm: "),
            ("garbage".to_string(), "'=' expected after key: garbage"),
            ("username=\"a\",username=\"b\"".to_string(), "DIGEST-MD5: peer sent more than one username directive: b"),
        ];
        for (response, message) in cases {
            let mut s = challenged();
            assert_eq!(
                s.evaluate(&login(), response.as_bytes()),
                Err(SaslError(message.into())),
                "{response}"
            );
            assert!(
                s.evaluate(&login(), b"").is_err(),
                "a failed exchange stays failed"
            );
        }
    }

    #[test]
    fn directives_parse_with_quotes_escapes_and_white_space() {
        let d = parse_directives(
            b" , Username = \"b\\\"o\\b\" ,, qop=auth ,nc=00000001\t,x-unknown=\"1,2\"",
        )
        .unwrap();
        assert_eq!(directive(&d, "username"), Some(&b"b\"ob"[..]));
        assert_eq!(directive(&d, "qop"), Some(&b"auth"[..]));
        assert_eq!(
            directive(&d, "nonce-count"),
            None,
            "`nc` is not the JDK's name"
        );
        assert!(parse_directives(b"a=\"open").is_err());
        assert!(parse_directives(b"a=\"x\"y").is_err());
        assert!(parse_directives(b"=x").is_err());
        assert!(parse_directives(b"a=").is_err());
    }

    #[test]
    fn a_first_token_of_any_content_gets_the_challenge() {
        let mut s = DigestMd5Server::new(NONCE);
        assert!(matches!(
            s.evaluate(&login(), b"garbage"),
            Ok(Outcome::Challenge(_))
        ));
        let mut s = DigestMd5Server::new(NONCE);
        assert!(s.evaluate(&login(), &[b'x'; 4097]).is_err());
    }

    #[test]
    fn super_users_and_the_super_password_come_from_properties() {
        let props: BTreeMap<String, String> = [
            ("zookeeper.superUser", "bob"),
            ("zookeeper.superUser.2", "carol"),
            ("zookeeper.superUserX", "dave"),
            (
                "zookeeper.SASLAuthenticationProvider.superPassword",
                "override",
            ),
            ("zookeeper.allowSaslFailedClients", "TRUE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut l = login();
        l.apply_properties(&props);
        assert!(l.is_super_user("bob") && l.is_super_user("carol"));
        assert!(!l.is_super_user("dave") && !l.is_super_user(""));
        assert!(l.allow_failed_clients);
        assert_eq!(l.password("super"), Some("override"));
        assert_eq!(l.password("bob"), Some("bobsecret"));
        assert_eq!(l.password("nobody"), None);
    }

    #[test]
    fn nonces_are_40_base64_characters() {
        let n = random_nonce();
        assert_eq!(n.len(), 40);
        assert_ne!(n, random_nonce());
    }

    #[test]
    fn configure_reads_the_server_section_and_refuses_what_cannot_log_in() {
        let dir = std::env::temp_dir().join(format!("gk-jaas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let none = BTreeMap::new();
        let good = write(
            "good.conf",
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };",
        );
        let cfg = SaslConfig::configure(Some(&good), &none).unwrap().unwrap();
        assert_eq!(cfg.password("bob"), Some("pw"));
        let client_only = write(
            "client.conf",
            "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"bob\" password=\"pw\"; };",
        );
        assert_eq!(
            SaslConfig::configure(Some(&client_only), &none).unwrap(),
            None
        );
        assert_eq!(SaslConfig::configure(None, &none).unwrap(), None);
        let krb = write(
            "krb.conf",
            "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/k\" principal=\"zk/h@R\"; };",
        );
        let e = SaslConfig::configure(Some(&krb), &none)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Could not configure server because SASL configuration did not allow the  ZooKeeper server to authenticate itself properly: javax.security.auth.login.LoginException:"), "{e}");
        let broken = write("broken.conf", "Server { oops");
        let e = SaslConfig::configure(Some(&broken), &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "No JAAS configuration section named 'Server' was found in '{}'.",
                broken.display()
            )),
            "{e}"
        );
        let missing = dir.join("missing.conf");
        assert!(SaslConfig::configure(Some(&missing), &none).is_err());
        let named: BTreeMap<String, String> =
            [(SERVER_SECTION_PROPERTY.to_owned(), "ZkServer".to_owned())].into();
        assert!(SaslConfig::configure(None, &named).is_err());
        assert_eq!(SaslConfig::configure(Some(&good), &named).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
