//! `kmsctl audit <subcommand>`: the audit trail over the `Audit` gRPC service.
//!
//! - `lookup`: CloudTrail-style lookup of the caller's account's events (LookupEvents),
//!   following `NextToken` pages up to `--max-items`; the service filters on one attribute,
//!   the others are applied here.
//! - `export`: the raw chain (GetAuditRecords) and every digest needed to verify it
//!   (GetAuditDigests), as `DIR/audit-<from>-<to>.jsonl` and `.digests.jsonl`; each file is
//!   written under a temporary name, fsynced and renamed; `--mark-exported` only then calls
//!   MarkAuditExported.
//! - `verify`: the verifier of `keyraft_audit` (= `keystore::audit`) over the live log or an
//!   export directory. The public keys come from a file (the trust anchor), never from the
//!   server: a server that rewrote the log could as well hand out its own key.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use keyraft_audit::{
    parse_jsonl, to_jsonl, AuditPublicKey, AuditRecord, DigestRecord, Failure as VerifyFailure,
    FailureKind, Verifier, VerifyReport,
};
use serde_json::{json, Map, Value};

use super::{iso8601, param_err, parse_timestamp, Failure, GlobalArgs, OutputFormat};
use crate::{proto, Client};

/// Env var naming the audit public keys file (`keyraft dev` writes it to its env file).
pub const ENV_AUDIT_PUBLIC_KEYS: &str = "KMS_AUDIT_PUBLIC_KEYS";

/// Exit code of `kmsctl audit verify` when the log does not verify.
pub const EXIT_VERIFY_FAILED: i32 = 1;

/// Records and digests per GetAuditRecords / GetAuditDigests call.
const PAGE: i32 = 1000;

/// `kmsctl audit` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Look up the caller's account's audit events, newest first (LookupEvents).
    Lookup {
        /// Oldest event time: RFC 3339 in UTC (2030-01-31T12:00:00Z) or epoch seconds.
        #[arg(long)]
        start_time: Option<String>,
        /// Newest event time: RFC 3339 in UTC or epoch seconds.
        #[arg(long)]
        end_time: Option<String>,
        /// Only events of this operation (Encrypt, CreateKey, ...).
        #[arg(long)]
        event_name: Option<String>,
        /// Only events naming this key (key id or key ARN).
        #[arg(long)]
        key_id: Option<String>,
        /// Only events by this principal ARN.
        #[arg(long)]
        principal: Option<String>,
        /// Only failed events with this error code (AccessDeniedException, ...).
        #[arg(long)]
        error_code: Option<String>,
        /// Stop after this many events (default: all).
        #[arg(long)]
        max_items: Option<usize>,
    },
    /// Export the raw chain and its digests to DIR (region administrators only).
    Export {
        /// Directory to write audit-<from>-<to>.jsonl and audit-<from>-<to>.digests.jsonl to.
        #[arg(long)]
        out: PathBuf,
        /// First seq (default: the first retained record).
        #[arg(long)]
        from: Option<u64>,
        /// Last seq (default: the chain head).
        #[arg(long)]
        to: Option<u64>,
        /// Once the files are durable, mark the exported records that a digest covers as
        /// exported (retention may then prune them).
        #[arg(long)]
        mark_exported: bool,
    },
    /// Verify the live log (default) or an export directory against signed digests.
    Verify {
        /// First seq to verify (default: the first retained record, or the export's start).
        #[arg(long)]
        from: Option<u64>,
        /// Last seq to verify (default: the head, or the export's end).
        #[arg(long)]
        to: Option<u64>,
        /// Verify the exports in this directory instead of the live log.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// JSON list of the region's audit public keys (default: $KMS_AUDIT_PUBLIC_KEYS).
        #[arg(long)]
        public_keys: Option<PathBuf>,
    },
}

impl AuditCommand {
    /// The operation name, for error messages.
    pub(super) fn operation(&self) -> &'static str {
        match self {
            AuditCommand::Lookup { .. } => "LookupEvents",
            AuditCommand::Export { .. } | AuditCommand::Verify { .. } => "GetAuditRecords",
        }
    }
}

fn local(message: impl Into<String>) -> Failure {
    Failure::Local {
        message: message.into(),
        code: super::EXIT_OTHER_ERROR,
    }
}

/// Runs one `kmsctl audit` subcommand.
pub(super) async fn execute(
    kms: &Client,
    g: &GlobalArgs,
    cmd: AuditCommand,
) -> Result<Option<Value>, Failure> {
    match cmd {
        AuditCommand::Lookup {
            start_time,
            end_time,
            event_name,
            key_id,
            principal,
            error_code,
            max_items,
        } => {
            let filters = Filters {
                event_name,
                key_id,
                principal,
                error_code,
            };
            let start = start_time
                .map(|t| parse_timestamp("start-time", &t))
                .transpose()?;
            let end = end_time
                .map(|t| parse_timestamp("end-time", &t))
                .transpose()?;
            lookup(kms, g, filters, start, end, max_items).await
        }
        AuditCommand::Export {
            out,
            from,
            to,
            mark_exported,
        } => export(kms, &out, from, to, mark_exported).await.map(Some),
        AuditCommand::Verify {
            from,
            to,
            dir,
            public_keys,
        } => {
            let keys = load_public_keys(g, public_keys)?;
            let outcome = match &dir {
                Some(dir) => verify_dir(dir, &keys, from, to)?,
                None => verify_live(kms, &keys, from, to).await?,
            };
            verified(g, outcome).map(Some)
        }
    }
}

// ---- lookup ----

struct Filters {
    event_name: Option<String>,
    key_id: Option<String>,
    principal: Option<String>,
    error_code: Option<String>,
}

impl Filters {
    /// The one attribute the service filters on: the most selective one given.
    fn server_side(&self) -> Option<(&'static str, &str)> {
        [
            ("ResourceName", &self.key_id),
            ("Username", &self.principal),
            ("EventName", &self.event_name),
            ("ErrorCode", &self.error_code),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    /// All of them, applied here (the server-side one again, harmlessly).
    fn matches(&self, e: &proto::LookupEvent) -> bool {
        let key_ok = self.key_id.as_deref().is_none_or(|k| {
            e.resources.iter().any(|r| {
                r.resource_name == k
                    || r.resource_name
                        .rsplit_once('/')
                        .is_some_and(|(_, id)| id == k)
            })
        });
        let principal_ok = self
            .principal
            .as_deref()
            .is_none_or(|p| e.username.as_deref() == Some(p));
        let name_ok = self.event_name.as_deref().is_none_or(|n| e.event_name == n);
        let code_ok = self
            .error_code
            .as_deref()
            .is_none_or(|c| error_code_of(e).as_deref() == Some(c));
        key_ok && principal_ok && name_ok && code_ok
    }
}

fn error_code_of(e: &proto::LookupEvent) -> Option<String> {
    let v: Value = serde_json::from_str(&e.cloud_trail_event).ok()?;
    v.get("errorCode")?.as_str().map(str::to_owned)
}

fn event_json(e: &proto::LookupEvent) -> Value {
    let mut m = Map::new();
    m.insert("EventId".into(), json!(e.event_id));
    m.insert("EventName".into(), json!(e.event_name));
    m.insert("ReadOnly".into(), json!(e.read_only.to_string()));
    if let Some(k) = &e.access_key_id {
        m.insert("AccessKeyId".into(), json!(k));
    }
    m.insert("EventTime".into(), json!(iso8601(e.event_time)));
    m.insert("EventSource".into(), json!(e.event_source));
    if let Some(u) = &e.username {
        m.insert("Username".into(), json!(u));
    }
    let resources: Vec<Value> = e
        .resources
        .iter()
        .map(|r| json!({ "ResourceType": r.resource_type, "ResourceName": r.resource_name }))
        .collect();
    m.insert("Resources".into(), Value::Array(resources));
    m.insert("CloudTrailEvent".into(), json!(e.cloud_trail_event));
    Value::Object(m)
}

fn table(events: &[proto::LookupEvent]) -> String {
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            [
                iso8601(e.event_time),
                e.event_name.clone(),
                e.username.clone().unwrap_or_default(),
                e.resources
                    .first()
                    .map(|r| r.resource_name.clone())
                    .unwrap_or_default(),
                error_code_of(e).unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "EventTime",
        "EventName",
        "Username",
        "Resource",
        "ErrorCode",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 5]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        cells.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(&header)];
    out.extend(rows.iter().map(line));
    out.join("\n")
}

async fn lookup(
    kms: &Client,
    g: &GlobalArgs,
    filters: Filters,
    start: Option<f64>,
    end: Option<f64>,
    max_items: Option<usize>,
) -> Result<Option<Value>, Failure> {
    if max_items == Some(0) {
        return Err(param_err("max-items", "must be at least 1").into());
    }
    let mut events: Vec<proto::LookupEvent> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let remaining = max_items.map_or(usize::MAX, |m| m - events.len());
        // Never more than what is still wanted: a page then cannot overshoot --max-items and
        // its NextToken resumes exactly after the last event shown.
        let mut b = kms.lookup_events().max_results(remaining.min(50) as i32);
        if let Some((k, v)) = filters.server_side() {
            b = b.lookup_attribute(k, v);
        }
        if let Some(s) = start {
            b = b.start_time(s);
        }
        if let Some(e) = end {
            b = b.end_time(e);
        }
        if let Some(t) = token.take() {
            b = b.next_token(t);
        }
        let page = b.send().await?;
        events.extend(page.events.into_iter().filter(|e| filters.matches(e)));
        token = page.next_token;
        if token.is_none() || max_items.is_some_and(|m| events.len() >= m) {
            break;
        }
    }
    if g.output == OutputFormat::Table {
        return Ok(Some(Value::String(table(&events))));
    }
    let mut m = Map::new();
    m.insert(
        "Events".into(),
        Value::Array(events.iter().map(event_json).collect()),
    );
    if let Some(t) = token {
        m.insert("NextToken".into(), json!(t));
    }
    Ok(Some(Value::Object(m)))
}

// ---- export ----

/// `audit-<from>-<to>.jsonl` and `audit-<from>-<to>.digests.jsonl`.
fn export_names(from: u64, to: u64) -> (String, String) {
    (
        format!("audit-{from}-{to}.jsonl"),
        format!("audit-{from}-{to}.digests.jsonl"),
    )
}

/// `audit-<from>-<to>.jsonl` -> (from, to); digests files and anything else -> `None`.
fn parse_export_name(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let (from, to) = range.split_once('-')?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// The first page of records from `from` (or the first retained one), with the chain's marks.
async fn first_page(
    kms: &Client,
    from: Option<u64>,
) -> Result<proto::GetAuditRecordsResponse, Failure> {
    let mut b = kms.get_audit_records().max_records(PAGE);
    if let Some(f) = from {
        b = b.from_seq(f);
    }
    Ok(b.send().await?)
}

/// The range to read: defaults from the head and retention; refuses pruned or future seqs.
fn resolve_range(
    first: &proto::GetAuditRecordsResponse,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<(u64, u64), Failure> {
    if first.head_seq == 0 {
        return Err(local(
            "The audit chain is empty: nothing to export or verify.",
        ));
    }
    let from = from.unwrap_or(first.first_retained_seq).max(1);
    let to = to.unwrap_or(first.head_seq);
    if from < first.first_retained_seq {
        return Err(param_err(
            "from",
            format!(
                "records before {} were pruned after export; verify them from the export",
                first.first_retained_seq
            ),
        )
        .into());
    }
    if to > first.head_seq {
        return Err(param_err("to", format!("the chain ends at record {}", first.head_seq)).into());
    }
    if from > to {
        return Err(param_err("from", format!("{from} is after --to {to}")).into());
    }
    Ok((from, to))
}

/// Feeds the records `from..=to` to `sink`, page by page, starting with `first`.
async fn stream_records(
    kms: &Client,
    first: proto::GetAuditRecordsResponse,
    from: u64,
    to: u64,
    mut sink: impl FnMut(AuditRecord) -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let mut page = first;
    let mut next = from;
    loop {
        let mut progressed = false;
        for r in &page.records {
            if r.seq < next {
                continue;
            }
            if r.seq > to {
                return Ok(());
            }
            progressed = true;
            next = r.seq.saturating_add(1);
            if !sink(r.to_record())? {
                return Ok(());
            }
        }
        if next > to || page.next_seq.is_none() {
            return Ok(());
        }
        if !progressed && !page.records.is_empty() {
            return Err(local("GetAuditRecords did not advance; stopping"));
        }
        page = kms
            .get_audit_records()
            .from_seq(next)
            .max_records(PAGE)
            .send()
            .await?;
        if page.records.is_empty() {
            return Ok(());
        }
    }
}

/// Every digest that touches `from..=to`: from the one ending at `from - 1` (or the first
/// covering `from`) through the first one reaching `to`, or the newest.
async fn fetch_digests(kms: &Client, from: u64, to: u64) -> Result<Vec<DigestRecord>, Failure> {
    let mut out = Vec::new();
    let mut page = kms
        .get_audit_digests()
        .from_seq(from)
        .max_results(PAGE)
        .send()
        .await?;
    loop {
        for d in &page.digests {
            out.push(d.to_digest());
            if d.to_seq >= to {
                return Ok(out);
            }
        }
        match page.next_digest_seq {
            Some(n) if !page.digests.is_empty() => {
                page = kms
                    .get_audit_digests()
                    .from_digest_seq(n)
                    .max_results(PAGE)
                    .send()
                    .await?;
            }
            _ => return Ok(out),
        }
    }
}

/// A file written under `dir/.name.tmp` and renamed to `dir/name` only once it is complete
/// and fsynced, so a reader never sees a partial export under the final name.
struct DurableFile {
    tmp: PathBuf,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> Failure {
    local(format!("Unable to {what} {}: {e}", p.display()))
}

impl DurableFile {
    fn create(dir: &Path, name: &str) -> Result<Self, Failure> {
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
        Ok(DurableFile {
            path: dir.join(name),
            file: std::io::BufWriter::new(file),
            tmp,
        })
    }

    fn write(&mut self, text: &str) -> Result<(), Failure> {
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| io_err("write", &self.tmp, e))
    }

    /// Flushes, fsyncs and renames; the caller fsyncs the directory afterwards.
    fn commit(self) -> Result<PathBuf, Failure> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| io_err("write", &self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err("fsync", &self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| io_err("rename", &self.tmp, e))?;
        Ok(self.path)
    }
}

async fn export(
    kms: &Client,
    out: &Path,
    from: Option<u64>,
    to: Option<u64>,
    mark_exported: bool,
) -> Result<Value, Failure> {
    let first = first_page(kms, from).await?;
    let (from, to) = resolve_range(&first, from, to)?;
    let (exported_through, first_retained) = (first.exported_through_seq, first.first_retained_seq);
    if mark_exported && from > exported_through.max(first_retained - 1) + 1 {
        return Err(param_err(
            "mark-exported",
            format!(
                "records {} to {} are not exported yet: an export marked as exported must start \
                 at or before {}",
                exported_through.max(first_retained - 1) + 1,
                from - 1,
                exported_through.max(first_retained - 1) + 1
            ),
        )
        .into());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| local(format!("Unable to create {}: {e}", out.display())))?;

    let (records_name, digests_name) = export_names(from, to);
    // Records go straight to the temporary file: an export may be larger than memory.
    let mut records_file = DurableFile::create(out, &records_name)?;
    let (mut count, mut last) = (0u64, None);
    let streamed = stream_records(kms, first, from, to, |r| {
        records_file.write(&to_jsonl(std::slice::from_ref(&r)))?;
        count += 1;
        last = Some(r.seq);
        Ok(true)
    })
    .await;
    if let Err(e) = streamed {
        let _ = std::fs::remove_file(&records_file.tmp);
        return Err(e);
    }
    if last != Some(to) {
        let _ = std::fs::remove_file(&records_file.tmp);
        return Err(local(format!(
            "the service returned records up to {} of {from}..={to}; nothing written",
            last.unwrap_or(from.saturating_sub(1))
        )));
    }
    let digests = match fetch_digests(kms, from, to).await {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&records_file.tmp);
            return Err(e);
        }
    };
    let mut digests_file = DurableFile::create(out, &digests_name)?;
    digests_file.write(&to_jsonl(&digests))?;
    let digests_path = digests_file.commit()?;
    let records_path = records_file.commit()?;
    // The renames are durable once the directory is.
    if let Ok(d) = std::fs::File::open(out) {
        let _ = d.sync_all();
    }

    let mut m = Map::new();
    m.insert(
        "RecordsFile".into(),
        json!(records_path.display().to_string()),
    );
    m.insert(
        "DigestsFile".into(),
        json!(digests_path.display().to_string()),
    );
    m.insert("FromSeq".into(), json!(from));
    m.insert("ToSeq".into(), json!(to));
    m.insert("Records".into(), json!(count));
    m.insert("Digests".into(), json!(digests.len()));
    let covered = digests.iter().map(|d| d.to_seq).max().unwrap_or(0).min(to);
    m.insert("CoveredBySignedDigestThrough".into(), json!(covered));
    if mark_exported {
        if covered >= from {
            let r = kms
                .mark_audit_exported()
                .through_seq(covered)
                .send()
                .await?;
            m.insert("ExportedThroughSeq".into(), json!(r.exported_through_seq));
        } else {
            m.insert("ExportedThroughSeq".into(), json!(exported_through));
            m.insert(
                "Note".into(),
                json!("no exported record is covered by a signed digest yet; nothing marked"),
            );
        }
    }
    Ok(Value::Object(m))
}

// ---- verify ----

fn load_public_keys(g: &GlobalArgs, flag: Option<PathBuf>) -> Result<Vec<AuditPublicKey>, Failure> {
    let from_env_file = || -> Option<PathBuf> {
        let path = g.env_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        let vars = crate::config::parse_env_file(&text).ok()?;
        let v = vars.get(ENV_AUDIT_PUBLIC_KEYS)?;
        // Relative paths in an env file are relative to it, as for the other KMS_* files.
        Some(path.parent().unwrap_or(Path::new(".")).join(v))
    };
    let path = flag
        .or_else(from_env_file)
        .or_else(|| std::env::var_os(ENV_AUDIT_PUBLIC_KEYS).map(PathBuf::from))
        .ok_or_else(|| {
            param_err(
                "public-keys",
                format!(
                    "required: the region's audit public keys file (or ${ENV_AUDIT_PUBLIC_KEYS})"
                ),
            )
        })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        param_err(
            "public-keys",
            format!("Unable to read {}: {e}", path.display()),
        )
    })?;
    let keys: Vec<AuditPublicKey> = serde_json::from_str(&text).map_err(|e| {
        param_err(
            "public-keys",
            format!(
                "{}: expected a JSON list of audit public keys: {e}",
                path.display()
            ),
        )
    })?;
    if keys.is_empty() {
        return Err(param_err("public-keys", format!("{} lists no key", path.display())).into());
    }
    for k in &keys {
        k.verifying_key()
            .map_err(|e| param_err("public-keys", e.to_string()))?;
    }
    Ok(keys)
}

/// What was verified, and how it went.
struct Outcome {
    source: String,
    from: u64,
    to: u64,
    report: VerifyReport,
}

/// Rule 4 of the verifier stops at the newest digest; an export (or the live range) also
/// declares its own end, and a log that stops short of it lost records even where no digest
/// reaches yet.
fn check_declared_end(report: &mut VerifyReport, from: u64, to: u64) {
    if report.first_failure.is_some() {
        return;
    }
    let last = from
        .saturating_add(report.records_checked)
        .saturating_sub(1);
    if report.records_checked == 0 || last < to {
        let first_missing = if report.records_checked == 0 {
            from
        } else {
            last + 1
        };
        report.first_failure = Some(VerifyFailure {
            seq: Some(first_missing),
            digest_seq: None,
            kind: FailureKind::Truncated,
            message: format!(
                "the log should reach record {to} but ends before record {first_missing} \
                 (records {first_missing} to {to} are missing)"
            ),
        });
    }
}

fn verify_dir(
    dir: &Path,
    keys: &[AuditPublicKey],
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Outcome, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| param_err("dir", format!("Unable to read {}: {e}", dir.display())))?;
    let mut exports: Vec<(u64, u64, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            parse_export_name(&name).map(|(a, b)| (a, b, name))
        })
        .filter(|(a, b, _)| from.is_none_or(|f| *b >= f) && to.is_none_or(|t| *a <= t))
        .collect();
    exports.sort();
    let (Some(first), Some(last)) = (exports.first(), exports.last()) else {
        return Err(param_err(
            "dir",
            format!("no audit-<from>-<to>.jsonl export in {}", dir.display()),
        )
        .into());
    };
    let start = from.unwrap_or(first.0);
    let end = to.unwrap_or(last.1);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| local(format!("Unable to read {}: {e}", dir.join(name).display())))
    };
    let mut records = Vec::new();
    let mut digests: BTreeMap<u64, DigestRecord> = BTreeMap::new();
    for (a, b, name) in &exports {
        let parsed: Vec<AuditRecord> =
            parse_jsonl(&read(name)?).map_err(|e| local(format!("{name}: {e}")))?;
        records.extend(parsed);
        let (_, digests_name) = export_names(*a, *b);
        let parsed: Vec<DigestRecord> = parse_jsonl(&read(&digests_name)?)
            .map_err(|e| local(format!("{digests_name}: {e}")))?;
        // Neighbouring exports share the digest that anchors the later one.
        for d in parsed {
            match digests.get(&d.digest_seq) {
                Some(have) if *have != d => {
                    return Err(Failure::Local {
                        message: format!(
                            "Verification FAILED: two different copies of digest {} \
                             (DigestChainBroken)",
                            d.digest_seq
                        ),
                        code: EXIT_VERIFY_FAILED,
                    })
                }
                Some(_) => {}
                None => {
                    digests.insert(d.digest_seq, d);
                }
            }
        }
    }
    let digests: Vec<DigestRecord> = digests.into_values().collect();
    let mut report = keyraft_audit::verify(&records, &digests, keys, Some((start, end)));
    check_declared_end(&mut report, start, end);
    Ok(Outcome {
        source: dir.display().to_string(),
        from: start,
        to: end,
        report,
    })
}

async fn verify_live(
    kms: &Client,
    keys: &[AuditPublicKey],
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Outcome, Failure> {
    let first = first_page(kms, from).await?;
    let (from, to) = resolve_range(&first, from, to)?;
    let digests = fetch_digests(kms, from, to).await?;
    let mut verifier = Verifier::new(&digests, keys, Some((from, to)));
    stream_records(kms, first, from, to, |r| Ok(verifier.push(&r))).await?;
    let mut report = verifier.finish();
    check_declared_end(&mut report, from, to);
    Ok(Outcome {
        source: "live".into(),
        from,
        to,
        report,
    })
}

fn verified(g: &GlobalArgs, o: Outcome) -> Result<Value, Failure> {
    if let Some(f) = &o.report.first_failure {
        let at = match (f.seq, f.digest_seq) {
            (Some(s), Some(d)) => format!("record {s} (digest {d})"),
            (Some(s), None) => format!("record {s}"),
            (None, Some(d)) => format!("digest {d}"),
            (None, None) => "the log".into(),
        };
        return Err(Failure::Local {
            message: format!(
                "Verification FAILED at {at} ({:?}): {}\n({} records and {} digests verified \
                 before it, in {} records {}..={})",
                f.kind,
                f.message,
                o.report.records_checked,
                o.report.digests_checked,
                o.source,
                o.from,
                o.to
            ),
            code: EXIT_VERIFY_FAILED,
        });
    }
    if g.output == OutputFormat::Table {
        return Ok(Value::String(format!(
            "OK: {} records ({}..={}) and {} digests verified ({})",
            o.report.records_checked, o.from, o.to, o.report.digests_checked, o.source
        )));
    }
    Ok(json!({
        "Result": "OK",
        "Source": o.source,
        "FromSeq": o.from,
        "ToSeq": o.to,
        "RecordsVerified": o.report.records_checked,
        "DigestsVerified": o.report.digests_checked,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names_round_trip_and_skip_digest_files() {
        let (records, digests) = export_names(5, 120);
        assert_eq!(records, "audit-5-120.jsonl");
        assert_eq!(parse_export_name(&records), Some((5, 120)));
        assert_eq!(parse_export_name(&digests), None);
        assert_eq!(parse_export_name("audit-public-keys.json"), None);
    }

    #[test]
    fn a_log_short_of_its_declared_end_is_truncated() {
        let mut r = VerifyReport {
            records_checked: 3,
            digests_checked: 1,
            first_failure: None,
        };
        check_declared_end(&mut r, 10, 14);
        let f = r.first_failure.unwrap();
        assert_eq!((f.seq, f.kind), (Some(13), FailureKind::Truncated));
        let mut ok = VerifyReport {
            records_checked: 5,
            digests_checked: 1,
            first_failure: None,
        };
        check_declared_end(&mut ok, 10, 14);
        assert!(ok.is_ok());
    }

    #[test]
    fn filters_apply_locally_and_pick_one_for_the_service() {
        let f = Filters {
            event_name: Some("Encrypt".into()),
            key_id: Some("k1".into()),
            principal: None,
            error_code: None,
        };
        assert_eq!(f.server_side(), Some(("ResourceName", "k1")));
        let mut e = proto::LookupEvent {
            event_name: "Encrypt".into(),
            resources: vec![proto::LookupResource {
                resource_type: "AWS::KMS::Key".into(),
                resource_name: "arn:aws:kms:us-east-1:111122223333:key/k1".into(),
            }],
            ..Default::default()
        };
        assert!(f.matches(&e));
        e.event_name = "Decrypt".into();
        assert!(!f.matches(&e));
    }
}
