//! AWS Signature Version 4 (header form, `AWS4-HMAC-SHA256`), verification side.
//!
//! Pure: the caller hands over the request's method, raw path, raw query, headers and body,
//! the secret it looked up for the access key, and the current time. Nothing here logs, and
//! no error message contains the secret, the signature or a derived key.
//!
//! Layout:
//! - [`parse_authorization`]: the `Authorization` header -> [`Authorization`] (access key id,
//!   credential scope, signed headers, signature).
//! - [`canonical_request`] / [`string_to_sign`] / [`signing_key`]: the three SigV4 steps.
//! - [`verify`]: scope checks, the 5-minute window, payload hash, constant-time comparison.
//! - [`sign`]: the client side, used by tests and tools to produce a valid header.
//!
//! URI canonicalization follows the rules for every service but S3: the path is normalized
//! (dot segments removed, repeated slashes folded) and then URI-encoded once more.

use std::fmt::Write as _;

use crate::crypto::{ct_eq, hmac_sha256 as hmac, sha256};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Maximum allowed difference between the request time and the server's clock.
pub const MAX_SKEW_SECS: u64 = 5 * 60;

/// Why a signature was refused. Each variant maps to one AWS `__type`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// `IncompleteSignatureException`: the header is malformed or a required part is missing.
    #[error("{0}")]
    Incomplete(String),
    /// `InvalidSignatureException`: the signature does not match, or the request expired.
    #[error("{0}")]
    Invalid(String),
    /// `InvalidSignatureException` as well, for a credential scope naming another region or
    /// service. Kept apart so callers can tell a misconfigured client from a forgery.
    #[error("{0}")]
    Scope(String),
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id (`AKIA...`).
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD`.
    pub date: String,
    /// Scope region.
    pub region: String,
    /// Scope service.
    pub service: String,
    /// Signed header names, lowercase, in the order given (must be sorted).
    pub signed_headers: Vec<String>,
    /// Hex signature (64 lowercase hex digits).
    pub signature: String,
}

impl Authorization {
    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The request as the verifier needs it. Header names may be in any case; a name may appear
/// several times (values are then joined with `,` in order, as SigV4 requires).
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The raw (still percent-encoded) path, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?` (may be empty).
    pub query: &'a str,
    /// Header (name, value) pairs as received.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The request body.
    pub payload: &'a [u8],
}

impl<'a> Request<'a> {
    fn header_values<'s>(&'s self, lower_name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| *v)
    }

    fn header_str(&self, lower_name: &str) -> Option<&'a str> {
        self.header_values(lower_name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }
}

/// Parse an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let value = value.trim();
    let rest = match value.split_once(char::is_whitespace) {
        Some((alg, rest)) if alg == ALGORITHM => rest,
        _ => {
            return Err(SigV4Error::Incomplete(format!(
                // The value is not echoed: a client may have put a token there.
                "Unsupported AWS 'algorithm'; only {ALGORITHM} is supported."
            )));
        }
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete_header());
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete_header()),
        };
        if slot.replace(v.trim()).is_some() {
            return Err(incomplete_header());
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Credential");
    }
    if signed_headers.is_none() {
        missing.push("SignedHeaders");
    }
    if signature.is_none() {
        missing.push("Signature");
    }
    if !missing.is_empty() {
        let mut msg = String::new();
        for m in missing {
            let _ = write!(msg, "Authorization header requires '{m}' parameter. ");
        }
        let _ = write!(msg, "Authorization={ALGORITHM}");
        return Err(SigV4Error::Incomplete(msg));
    }
    let (credential, signed_headers, signature) = (
        credential.unwrap_or_default(),
        signed_headers.unwrap_or_default(),
        signature.unwrap_or_default(),
    );

    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts.iter().any(|p| p.is_empty()) {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped to a valid region, service and terminated by \
             'aws4_request'. Credential={}",
            parts.first().copied().unwrap_or("")
        )));
    }
    if parts[1].len() != 8 || !parts[1].bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Incomplete(
            "Credential should be scoped to a valid date (YYYYMMDD).".into(),
        ));
    }
    let signed: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed.iter().any(|h| h.is_empty()) {
        return Err(incomplete_header());
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigV4Error::Incomplete(
            "Signature must be 64 hexadecimal characters.".into(),
        ));
    }
    Ok(Authorization {
        access_key_id: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        signed_headers: signed,
        signature: signature.to_ascii_lowercase(),
    })
}

fn incomplete_header() -> SigV4Error {
    // Never echo the header: it carries the signature.
    SigV4Error::Incomplete(format!(
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
         parameters, each once, separated by commas. Authorization={ALGORITHM}"
    ))
}

/// Parse an ISO 8601 basic timestamp `YYYYMMDDTHHMMSSZ` into seconds since the Unix epoch.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    // ASCII first: slicing below must never split a multi-byte character.
    if !s.is_ascii() || b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, se) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    let days = days_from_civil(y as i64, mo as i64, d as i64);
    if days < 0 {
        return None;
    }
    Some(days as u64 * 86_400 + h * 3600 + mi * 60 + se)
}

/// Format seconds since the Unix epoch as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(epoch_secs: u64) -> String {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil calendar algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3986 unreserved characters stay; everything else becomes `%XX` (uppercase hex).
fn uri_encode(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn percent_decode(input: &str) -> Vec<u8> {
    let b = input.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI for non-S3 services: dot segments removed, repeated slashes folded, a
/// trailing slash kept, then every byte but unreserved characters and `/` percent-encoded
/// (so an already-encoded `%2F` in the raw path becomes `%252F`, as botocore computes it).
pub fn canonical_uri(raw_path: &str) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && normalized.len() > 1 {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len());
    uri_encode(normalized.as_bytes(), true, &mut out);
    out
}

/// The canonical query string: each parameter decoded then re-encoded, sorted by name, then
/// by value; a parameter without `=` gets an empty value.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&percent_decode(k), false, &mut ek);
            uri_encode(&percent_decode(v), false, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Trim a header value and fold runs of spaces/tabs into one space.
fn fold_value(v: &[u8], out: &mut Vec<u8>) {
    let mut pending_space = false;
    let mut started = false;
    for &b in v {
        if b == b' ' || b == b'\t' || b == b'\r' || b == b'\n' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The SigV4 canonical request, as bytes (header values need not be UTF-8).
pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, v) in req.header_values(name).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            fold_value(v, &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(sha256(canonical_request))
    )
}

/// The derived signing key `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
/// "aws4_request")`. Returned as plain bytes: callers use it at once and drop it.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = Vec::with_capacity(4 + secret.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret);
    let k_date = hmac(&k, date.as_bytes());
    zeroize::Zeroize::zeroize(&mut k);
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// What the verifier expects of the credential scope and the clock.
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    /// The front's region.
    pub region: &'a str,
    /// The service name, `kms`.
    pub service: &'a str,
    /// The server's clock, seconds since the Unix epoch.
    pub now_epoch_secs: u64,
}

/// Check the scope and time of a parsed header before the secret is looked up. Cheap, and
/// it means a misdirected or replayed request never costs a store read.
pub fn precheck(
    req: &Request<'_>,
    auth: &Authorization,
    exp: &Expectations<'_>,
) -> Result<u64, SigV4Error> {
    if auth.service != exp.service {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to correct service: '{}'. ",
            exp.service
        )));
    }
    if auth.region != exp.region {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let amz_date = req.header_str("x-amz-date").ok_or_else(|| {
        SigV4Error::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header."
                .into(),
        )
    })?;
    let t = parse_amz_date(amz_date).ok_or_else(|| {
        SigV4Error::Incomplete(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into(),
        )
    })?;
    if amz_date[..8] != auth.date {
        return Err(SigV4Error::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    let now = exp.now_epoch_secs;
    if t + MAX_SKEW_SECS < now {
        return Err(SigV4Error::Invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(now.saturating_sub(MAX_SKEW_SECS)),
            format_amz_date(now)
        )));
    }
    if t > now + MAX_SKEW_SECS {
        return Err(SigV4Error::Invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            format_amz_date(now + MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    Ok(t)
}

/// Verify a request signed with `auth` under `secret`. Runs [`precheck`] first.
pub fn verify(
    req: &Request<'_>,
    auth: &Authorization,
    secret: &[u8],
    exp: &Expectations<'_>,
) -> Result<(), SigV4Error> {
    precheck(req, auth, exp)?;
    let amz_date = req.header_str("x-amz-date").unwrap_or_default();
    let actual_hash = hex::encode(sha256(req.payload));
    if let Some(claimed) = req.header_str("x-amz-content-sha256") {
        // The claimed hash is what the client signed; it must also be the body we got, or a
        // signed header would vouch for a swapped body.
        if !claimed.eq_ignore_ascii_case(&actual_hash) {
            return Err(SigV4Error::Invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ));
        }
    }
    let creq = canonical_request(req, &auth.signed_headers, &actual_hash);
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    let expected = hex::encode(hmac(&key, sts.as_bytes()));
    if ct_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigV4Error::Invalid(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .into(),
        ))
    }
}

/// Client side: compute the `Authorization` header value for `req`, signing the given header
/// names (lowercase, sorted by this function). `req.headers` must already contain every
/// signed header, including `host` and `x-amz-date`.
pub fn sign(
    req: &Request<'_>,
    signed_headers: &[&str],
    access_key_id: &str,
    secret: &[u8],
    region: &str,
    service: &str,
) -> Result<String, SigV4Error> {
    let amz_date = req
        .header_str("x-amz-date")
        .ok_or_else(|| SigV4Error::Incomplete("x-amz-date header missing".into()))?;
    if parse_amz_date(amz_date).is_none() {
        return Err(SigV4Error::Incomplete("bad x-amz-date".into()));
    }
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let creq = canonical_request(req, &names, &hex::encode(sha256(req.payload)));
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = signing_key(secret, date, region, service);
    let sig = hex::encode(hmac(&key, sts.as_bytes()));
    Ok(format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={sig}",
        names.join(";")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AMZ_DATE: &str = "20261128T150650Z";
    const BODY: &[u8] = br#"{"KeyId":"alias/test","Plaintext":"aGVsbG8="}"#;
    // Produced by botocore 1.43 (`SigV4Auth(creds, "kms", "us-east-1").add_auth(...)`).
    const BOTOCORE_POST_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=01f186530f88a5718760f4a3f67f0c0919dd3221ffa9fc2648ddcc61f97db340";
    // GET https://localhost:8443/a/./b/../c//d%2Fe?b=2&a=1&a=0&c with `My-Header: "  x   y  z "`.
    const BOTOCORE_GET_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, SignedHeaders=host;my-header;x-amz-date, Signature=e79e44c5d9490e7a26bdada212ff7731a3efd1275e0164a10bfd67378523d452";

    fn exp(now: u64) -> Expectations<'static> {
        Expectations {
            region: "us-east-1",
            service: "kms",
            now_epoch_secs: now,
        }
    }

    fn now() -> u64 {
        parse_amz_date(AMZ_DATE).unwrap()
    }

    fn post_headers(auth: &'static str) -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("X-Amz-Target", b"TrentService.Encrypt".as_slice()),
            ("Content-Type", b"application/x-amz-json-1.1".as_slice()),
            ("X-Amz-Date", AMZ_DATE.as_bytes()),
            ("Host", b"kms.us-east-1.amazonaws.com".as_slice()),
            ("Authorization", auth.as_bytes()),
        ]
    }

    fn post<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            payload: body,
        }
    }

    #[test]
    fn accepts_botocore_signed_kms_request() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        assert_eq!(auth.scope(), "20261128/us-east-1/kms/aws4_request");
        verify(&post(&headers, BODY), &auth, SECRET, &exp(now())).unwrap();
    }

    #[test]
    fn accepts_botocore_signature_with_dot_segments_query_and_folded_spaces() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"localhost:8443".as_slice()),
            ("My-Header", b"  x   y  z ".as_slice()),
            ("X-Amz-Date", AMZ_DATE.as_bytes()),
        ];
        let req = Request {
            method: "GET",
            path: "/a/./b/../c//d%2Fe",
            query: "b=2&a=1&a=0&c",
            headers: &headers,
            payload: b"",
        };
        assert_eq!(canonical_uri(req.path), "/a/c/d%252Fe");
        assert_eq!(canonical_query(req.query), "a=0&a=1&b=2&c=");
        let auth = parse_authorization(BOTOCORE_GET_AUTH).unwrap();
        verify(&req, &auth, SECRET, &exp(now())).unwrap();
    }

    #[test]
    fn sign_reproduces_botocore() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let header = sign(
            &post(&headers, BODY),
            &["x-amz-target", "content-type", "host", "x-amz-date"],
            "AKIDEXAMPLE",
            SECRET,
            "us-east-1",
            "kms",
        )
        .unwrap();
        assert_eq!(header, BOTOCORE_POST_AUTH);
    }

    fn expect_invalid(r: Result<(), SigV4Error>) {
        match r {
            Err(SigV4Error::Invalid(m)) => assert!(m.contains("does not match"), "{m}"),
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn rejects_tampered_body() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        let body = br#"{"KeyId":"alias/other","Plaintext":"aGVsbG8="}"#;
        expect_invalid(verify(&post(&headers, body), &auth, SECRET, &exp(now())));
    }

    #[test]
    fn rejects_tampered_signed_header() {
        let mut headers = post_headers(BOTOCORE_POST_AUTH);
        headers[0].1 = b"TrentService.Decrypt";
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        expect_invalid(verify(&post(&headers, BODY), &auth, SECRET, &exp(now())));
    }

    #[test]
    fn rejects_wrong_secret_and_flipped_signature() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let mut auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        expect_invalid(verify(
            &post(&headers, BODY),
            &auth,
            b"not-the-secret",
            &exp(now()),
        ));
        auth.signature.replace_range(0..1, "1");
        expect_invalid(verify(&post(&headers, BODY), &auth, SECRET, &exp(now())));
    }

    #[test]
    fn unsigned_headers_may_change() {
        let mut headers = post_headers(BOTOCORE_POST_AUTH);
        headers.push(("User-Agent", b"whatever".as_slice()));
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        verify(&post(&headers, BODY), &auth, SECRET, &exp(now())).unwrap();
    }

    #[test]
    fn content_sha256_header_must_match_body() {
        let mut headers = post_headers(BOTOCORE_POST_AUTH);
        let wrong = "0".repeat(64);
        headers.push(("x-amz-content-sha256", wrong.as_bytes()));
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        let err = verify(&post(&headers, BODY), &auth, SECRET, &exp(now())).unwrap_err();
        assert!(matches!(err, SigV4Error::Invalid(m) if m.contains("x-amz-content-sha256")));
    }

    #[test]
    fn expired_request_uses_aws_message() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        let later = now() + 5 * 60 + 1;
        let err = verify(&post(&headers, BODY), &auth, SECRET, &exp(later)).unwrap_err();
        assert_eq!(
            err,
            SigV4Error::Invalid(
                "Signature expired: 20261128T150650Z is now earlier than 20261128T150651Z \
                 (20261128T151151Z - 5 min.)"
                    .into()
            )
        );
        // Exactly at the edge is still accepted.
        verify(&post(&headers, BODY), &auth, SECRET, &exp(now() + 300)).unwrap();
        verify(&post(&headers, BODY), &auth, SECRET, &exp(now() - 300)).unwrap();
        let err = verify(&post(&headers, BODY), &auth, SECRET, &exp(now() - 301)).unwrap_err();
        assert!(
            matches!(err, SigV4Error::Invalid(m) if m.starts_with("Signature not yet current"))
        );
    }

    #[test]
    fn scope_must_name_kms_and_this_region() {
        let headers = post_headers(BOTOCORE_POST_AUTH);
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        let wrong_region = Expectations {
            region: "eu-west-1",
            ..exp(now())
        };
        assert!(matches!(
            verify(&post(&headers, BODY), &auth, SECRET, &wrong_region),
            Err(SigV4Error::Scope(m)) if m.contains("'us-east-1'")
        ));
        let wrong_service = Expectations {
            service: "s3",
            ..exp(now())
        };
        assert!(matches!(
            verify(&post(&headers, BODY), &auth, SECRET, &wrong_service),
            Err(SigV4Error::Scope(_))
        ));
    }

    #[test]
    fn missing_amz_date_is_incomplete() {
        let headers: Vec<_> = post_headers(BOTOCORE_POST_AUTH)
            .into_iter()
            .filter(|(n, _)| *n != "X-Amz-Date")
            .collect();
        let auth = parse_authorization(BOTOCORE_POST_AUTH).unwrap();
        assert!(matches!(
            verify(&post(&headers, BODY), &auth, SECRET, &exp(now())),
            Err(SigV4Error::Incomplete(_))
        ));
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete() {
        for h in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA1 Credential=a/20261128/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261128/us-east-1/kms/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=a/20261128/us-east-1/kms, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=a/2026112/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=a/20261128/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=a/20261128/us-east-1/kms/aws4_request, Credential=b, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 garbage",
            "AWS4-HMAC-SHA256 Credential=a/20261128/us-east-1/kms/aws4_request, SignedHeaders=;, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(
                matches!(parse_authorization(h), Err(SigV4Error::Incomplete(_))),
                "accepted {h:?}"
            );
        }
    }

    #[test]
    fn host_must_be_signed() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, \
             SignedHeaders=x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        )
        .unwrap();
        let headers = post_headers(BOTOCORE_POST_AUTH);
        assert!(matches!(
            verify(&post(&headers, BODY), &auth, SECRET, &exp(now())),
            Err(SigV4Error::Incomplete(_))
        ));
    }

    #[test]
    fn amz_dates_round_trip_and_reject_garbage() {
        for s in [
            "19700101T000000Z",
            "20000229T235959Z",
            "20261128T150650Z",
            "21001231T120000Z",
        ] {
            assert_eq!(format_amz_date(parse_amz_date(s).unwrap()), s);
        }
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        for s in [
            "",
            "2026-11-28T15:06:50Z",
            "20261128T150650",
            "20261301T000000Z",
            "20230229T000000Z",
            "2026112XT150650Z",
            "20261128T250000Z",
            "+0261128T150650Z",
            // 16 bytes with the T and Z in place, but a multi-byte character inside.
            "202\u{e9}128T150650Z",
            "2026112\u{e9}T15065Z",
        ] {
            assert_eq!(parse_amz_date(s), None, "{s}");
        }
    }

    #[test]
    fn canonical_uri_matches_botocore_rules() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/b/"), "/a/b/");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_uri("/a b"), "/a%20b");
        assert_eq!(canonical_uri("/é"), "/%C3%A9");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsers_never_panic(s in ".{0,300}", q in "[a-zA-Z0-9%=&._~+-]{0,100}") {
                let _ = parse_authorization(&s);
                let _ = parse_amz_date(&s);
                let _ = canonical_uri(&s);
                let _ = canonical_query(&s);
                let _ = canonical_query(&q);
            }

            #[test]
            fn amz_dates_round_trip(secs in 0u64..253_402_300_799) {
                prop_assert_eq!(parse_amz_date(&format_amz_date(secs)), Some(secs));
            }

            #[test]
            fn verify_never_panics_and_refuses_forgeries(
                body in proptest::collection::vec(any::<u8>(), 0..200),
                value in proptest::collection::vec(any::<u8>(), 0..50),
                sig in "[0-9a-f]{64}",
            ) {
                let header = format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, \
                     SignedHeaders=host;x-amz-date;x-odd, Signature={sig}"
                );
                let auth = parse_authorization(&header).unwrap();
                let headers: Vec<(&str, &[u8])> = vec![
                    ("host", b"h".as_slice()),
                    ("x-amz-date", AMZ_DATE.as_bytes()),
                    ("x-odd", value.as_slice()),
                ];
                let req = Request { method: "POST", path: "/", query: "", headers: &headers, payload: &body };
                prop_assert!(verify(&req, &auth, SECRET, &exp(now())).is_err());
            }
        }
    }
}
