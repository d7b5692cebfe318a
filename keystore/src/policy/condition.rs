//! Condition operators: parsing an operator name and its values, and testing them against
//! a `ConditionContext`.
//!
//! Semantics (IAM's): a block is an AND over operators and keys, an OR over one key's
//! values. A missing key makes a positive operator false and a negated one
//! (`StringNotEquals`, `NotIpAddress`, `ArnNotLike`, ...) true; `...IfExists` makes it true
//! either way. `ForAnyValue:` needs some context value to satisfy the operator (absent ->
//! false), `ForAllValues:` needs every one to (absent -> true). Policy values are checked
//! when the policy is parsed, so a typo in a date or CIDR is a `MalformedPolicyDocument`
//! rather than a condition that silently never matches.

use std::net::IpAddr;

use base64::Engine as _;

use super::glob::{arn_match, glob_match};
use super::json::Json;
use super::{ConditionContext, PolicyError};

/// One `"Operator": {"key": values}` pair.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    kind: Kind,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
    key: String,
    values: Values,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Clone, Debug)]
enum Values {
    Str(Vec<String>),
    Num(Vec<f64>),
    /// Nanoseconds since the Unix epoch.
    Date(Vec<i128>),
    Bool(Vec<bool>),
    Bin(Vec<Vec<u8>>),
    Ip(Vec<Cidr>),
    /// `Null`'s values: `true` = the key must be absent.
    Null(Vec<bool>),
}

/// Parses an operator name such as `ForAnyValue:StringNotLikeIfExists` into
/// `(kind, negated, qualifier, if_exists)`. Names compare case-insensitively.
fn parse_operator(name: &str) -> Option<(Kind, bool, Qualifier, bool)> {
    let lower = name.to_ascii_lowercase();
    let (qualifier, rest) = if let Some(r) = lower.strip_prefix("foranyvalue:") {
        (Qualifier::ForAnyValue, r)
    } else if let Some(r) = lower.strip_prefix("forallvalues:") {
        (Qualifier::ForAllValues, r)
    } else {
        (Qualifier::None, lower.as_str())
    };
    let (base, if_exists) = match rest.strip_suffix("ifexists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let (kind, negated) = match base {
        "stringequals" => (Kind::StringEquals, false),
        "stringnotequals" => (Kind::StringEquals, true),
        "stringequalsignorecase" => (Kind::StringEqualsIgnoreCase, false),
        "stringnotequalsignorecase" => (Kind::StringEqualsIgnoreCase, true),
        "stringlike" => (Kind::StringLike, false),
        "stringnotlike" => (Kind::StringLike, true),
        "numericequals" => (Kind::Numeric(Cmp::Eq), false),
        "numericnotequals" => (Kind::Numeric(Cmp::Eq), true),
        "numericlessthan" => (Kind::Numeric(Cmp::Lt), false),
        "numericlessthanequals" => (Kind::Numeric(Cmp::Le), false),
        "numericgreaterthan" => (Kind::Numeric(Cmp::Gt), false),
        "numericgreaterthanequals" => (Kind::Numeric(Cmp::Ge), false),
        "dateequals" => (Kind::Date(Cmp::Eq), false),
        "datenotequals" => (Kind::Date(Cmp::Eq), true),
        "datelessthan" => (Kind::Date(Cmp::Lt), false),
        "datelessthanequals" => (Kind::Date(Cmp::Le), false),
        "dategreaterthan" => (Kind::Date(Cmp::Gt), false),
        "dategreaterthanequals" => (Kind::Date(Cmp::Ge), false),
        "bool" => (Kind::Bool, false),
        "binaryequals" => (Kind::Binary, false),
        "ipaddress" => (Kind::Ip, false),
        "notipaddress" => (Kind::Ip, true),
        "arnequals" | "arnlike" => (Kind::Arn, false),
        "arnnotequals" | "arnnotlike" => (Kind::Arn, true),
        "null" => (Kind::Null, false),
        _ => return None,
    };
    Some((kind, negated, qualifier, if_exists))
}

/// Parses a whole `Condition` element. `at` names the statement for error messages.
pub(crate) fn parse_block(block: &Json, at: &str) -> Result<Vec<Condition>, PolicyError> {
    let Json::Object(ops) = block else {
        return Err(PolicyError(format!(
            "{at}: Condition must be an object of operators, not {}",
            block.type_name()
        )));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let (kind, negated, qualifier, if_exists) = parse_operator(op_name).ok_or_else(|| {
            PolicyError(format!("{at}: unknown condition operator \"{op_name}\""))
        })?;
        if kind == Kind::Null && (if_exists || qualifier != Qualifier::None) {
            return Err(PolicyError(format!(
                "{at}: condition operator \"{op_name}\" is not valid: Null takes neither \
                 IfExists nor a set qualifier"
            )));
        }
        let Json::Object(keys) = keys else {
            return Err(PolicyError(format!(
                "{at}: condition operator \"{op_name}\" must map condition keys to values, \
                 not be {}",
                keys.type_name()
            )));
        };
        if keys.is_empty() {
            return Err(PolicyError(format!(
                "{at}: condition operator \"{op_name}\" has no condition keys"
            )));
        }
        for (key, raw) in keys {
            let where_ = format!("{at}: condition \"{op_name}\" key \"{key}\"");
            if key.trim().is_empty() {
                return Err(PolicyError(format!(
                    "{at}: condition \"{op_name}\" has an empty key"
                )));
            }
            let strings = value_strings(raw, &where_)?;
            let values = typed_values(kind, &strings, &where_)?;
            out.push(Condition {
                kind,
                negated,
                qualifier,
                if_exists,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// A condition value may be a string, number or boolean, or a non-empty list of them.
fn value_strings(raw: &Json, where_: &str) -> Result<Vec<String>, PolicyError> {
    fn scalar(v: &Json) -> Option<String> {
        match v {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.clone()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let bad = |v: &Json| {
        PolicyError(format!(
            "{where_}: values must be strings, numbers or booleans, not {}",
            v.type_name()
        ))
    };
    match raw {
        Json::Array(items) => {
            if items.is_empty() {
                return Err(PolicyError(format!(
                    "{where_}: the list of values is empty"
                )));
            }
            items
                .iter()
                .map(|v| scalar(v).ok_or_else(|| bad(v)))
                .collect()
        }
        other => Ok(vec![scalar(other).ok_or_else(|| bad(other))?]),
    }
}

fn typed_values(kind: Kind, strings: &[String], where_: &str) -> Result<Values, PolicyError> {
    fn all<T>(
        strings: &[String],
        parse: impl Fn(&str) -> Option<T>,
        what: &str,
        where_: &str,
    ) -> Result<Vec<T>, PolicyError> {
        strings
            .iter()
            .map(|s| {
                parse(s).ok_or_else(|| PolicyError(format!("{where_}: \"{s}\" is not {what}")))
            })
            .collect()
    }
    Ok(match kind {
        Kind::StringEquals | Kind::StringEqualsIgnoreCase | Kind::StringLike | Kind::Arn => {
            Values::Str(strings.to_vec())
        }
        Kind::Numeric(_) => Values::Num(all(strings, parse_number, "a number", where_)?),
        Kind::Date(_) => Values::Date(all(
            strings,
            parse_date,
            "a date (ISO 8601, e.g. 2024-01-31T12:00:00Z, or epoch seconds)",
            where_,
        )?),
        Kind::Bool => Values::Bool(all(strings, parse_bool, "true or false", where_)?),
        Kind::Null => Values::Null(all(strings, parse_bool, "true or false", where_)?),
        Kind::Binary => Values::Bin(all(strings, parse_base64, "base64", where_)?),
        Kind::Ip => Values::Ip(all(
            strings,
            Cidr::parse,
            "an IP address or CIDR block",
            where_,
        )?),
    })
}

impl Condition {
    /// The condition key, as written.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether the condition holds for `ctx`.
    pub(crate) fn holds(&self, ctx: &ConditionContext) -> bool {
        // An empty multi-valued key is indistinguishable from an absent one for every
        // operator, so treat them alike.
        let present = ctx.get(&self.key).filter(|v| !v.is_empty());
        if let Values::Null(expect_absent) = &self.values {
            return expect_absent.iter().any(|&a| a == present.is_none());
        }
        let Some(actual) = present else {
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::None => self.negated,
                };
        };
        match self.qualifier {
            // A negated operator over several values is "none of them matches".
            Qualifier::None => actual.iter().any(|v| self.matches_one(v)) != self.negated,
            Qualifier::ForAnyValue => actual.iter().any(|v| self.matches_one(v) != self.negated),
            Qualifier::ForAllValues => actual.iter().all(|v| self.matches_one(v) != self.negated),
        }
    }

    /// Whether one context value matches any policy value under the positive operator.
    fn matches_one(&self, actual: &str) -> bool {
        match (&self.values, self.kind) {
            (Values::Str(ps), Kind::StringEquals) => ps.iter().any(|p| p == actual),
            (Values::Str(ps), Kind::StringEqualsIgnoreCase) => {
                let a = actual.to_lowercase();
                ps.iter().any(|p| p.to_lowercase() == a)
            }
            (Values::Str(ps), Kind::StringLike) => ps.iter().any(|p| glob_match(p, actual, false)),
            (Values::Str(ps), Kind::Arn) => ps.iter().any(|p| arn_match(p, actual)),
            (Values::Num(ps), Kind::Numeric(cmp)) => {
                parse_number(actual).is_some_and(|a| ps.iter().any(|p| compare(cmp, a, *p)))
            }
            (Values::Date(ps), Kind::Date(cmp)) => {
                parse_date(actual).is_some_and(|a| ps.iter().any(|p| compare(cmp, a, *p)))
            }
            (Values::Bool(ps), Kind::Bool) => parse_bool(actual).is_some_and(|a| ps.contains(&a)),
            (Values::Bin(ps), Kind::Binary) => {
                parse_base64(actual).is_some_and(|a| ps.contains(&a))
            }
            (Values::Ip(ps), Kind::Ip) => {
                parse_ip(actual).is_some_and(|a| ps.iter().any(|p| p.contains(a)))
            }
            // typed_values pairs each kind with its own variant.
            _ => false,
        }
    }
}

fn compare<T: PartialOrd>(cmp: Cmp, actual: T, policy: T) -> bool {
    match cmp {
        Cmp::Eq => actual == policy,
        Cmp::Lt => actual < policy,
        Cmp::Le => actual <= policy,
        Cmp::Gt => actual > policy,
        Cmp::Ge => actual >= policy,
    }
}

/// A plain decimal (`-12`, `3.5`): Rust's float parser would also take `inf`, `NaN` and
/// exponents, which IAM does not.
fn parse_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_base64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Dates as IAM takes them: epoch seconds (`1700000000`), a date (`2024-01-31`, midnight
/// UTC), or `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `Z`, `±HH:MM`, `±HHMM` or no zone (UTC).
/// Returns nanoseconds since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    const NANOS: i128 = 1_000_000_000;
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i128>().ok().map(|secs| secs * NANOS);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    let mut nanos: i128 = 0;
    let mut i = 10;
    if b.len() > i {
        if !matches!(b.get(i), Some(b'T' | b't')) {
            return None;
        }
        let (hour, minute) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || hour > 23 || minute > 59 {
            return None;
        }
        secs += hour * 3600 + minute * 60;
        i += 6;
        if b.get(i) == Some(&b':') {
            let second = num(i + 1, 2)?;
            if second > 60 {
                return None;
            }
            secs += second;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let frac = s.get(start..i)?;
                if frac.is_empty() {
                    return None;
                }
                // Nanosecond precision is plenty; extra digits are truncated.
                let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
                nanos = digits.parse().ok()?;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') if b.len() == i + 1 => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                let (om, end) = if b.get(i + 3) == Some(&b':') {
                    (num(i + 4, 2)?, i + 6)
                } else {
                    (num(i + 3, 2)?, i + 5)
                };
                if b.len() != end || oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                // Local time = UTC + offset.
                secs += if sign == b'+' { -offset } else { offset };
            }
            _ => return None,
        }
    }
    Some(i128::from(secs) * NANOS + nanos)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An address block; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?))
            }
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A request's source address; an IPv4-mapped IPv6 address counts as the IPv4 one, since
/// dual-stack listeners report IPv4 clients that way.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Option<i128> {
        parse_date(s).map(|n| n / 1_000_000_000)
    }

    #[test]
    fn dates_parse_in_every_accepted_form() {
        assert_eq!(date("1970-01-01"), Some(0));
        assert_eq!(date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(date("2024-02-29T12:30:00Z"), Some(1_709_209_800));
        assert_eq!(date("2024-02-29T12:30Z"), Some(1_709_209_800));
        assert_eq!(date("2024-02-29T12:30:00"), Some(1_709_209_800));
        assert_eq!(date("2024-02-29t12:30:00z"), Some(1_709_209_800));
        assert_eq!(date("2024-02-29T14:30:00+02:00"), Some(1_709_209_800));
        assert_eq!(date("2024-02-29T07:30:00-0500"), Some(1_709_209_800));
        assert_eq!(date("1709209800"), Some(1_709_209_800));
        assert_eq!(parse_date("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            parse_date("1970-01-01T00:00:00.1234567891Z"),
            Some(123_456_789)
        );
        assert_eq!(date("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(date("2000-03-01"), Some(951_868_800));
    }

    #[test]
    fn invalid_dates_are_refused() {
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "2024-01-01T24:00:00Z",
            "2024-01-01T12:60:00Z",
            "2024-01-01 12:00:00Z",
            "2024-01-01T12:00:00ZZ",
            "2024-01-01T12:00:00.Z",
            "2024-01-01T12:00:00+2",
            "2024-1-01",
            "yesterday",
            "-5",
            "1e9",
            "2024-01-01T1é:00:00Z",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_only() {
        let net = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(net.contains("203.0.113.7".parse().unwrap()));
        assert!(!net.contains("203.0.114.7".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let host = Cidr::parse("10.1.2.3").unwrap();
        assert!(host.contains("10.1.2.3".parse().unwrap()));
        assert!(!host.contains("10.1.2.4".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all6 = Cidr::parse("::/0").unwrap();
        assert!(all6.contains("::1".parse().unwrap()));
        // Host bits in the network address are ignored, as IAM does.
        assert!(Cidr::parse("10.9.9.9/8")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_blocks() {
        let net = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(parse_ip("::ffff:192.0.2.9").unwrap()));
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(parse_number("42"), Some(42.0));
        assert_eq!(parse_number("-3.5"), Some(-3.5));
        assert_eq!(parse_number("+7"), Some(7.0));
        for bad in ["", "inf", "NaN", "1e3", "1.", ".5", "--1", "0x10", " 1"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn operator_names_split_into_their_parts() {
        assert_eq!(
            parse_operator("ForAnyValue:StringNotLikeIfExists"),
            Some((Kind::StringLike, true, Qualifier::ForAnyValue, true))
        );
        assert_eq!(
            parse_operator("numericlessthanequals"),
            Some((Kind::Numeric(Cmp::Le), false, Qualifier::None, false))
        );
        assert_eq!(parse_operator("StringEqualsIfExistsIfExists"), None);
        assert_eq!(parse_operator("ForSomeValues:StringEquals"), None);
        assert_eq!(parse_operator("IfExists"), None);
    }
}
