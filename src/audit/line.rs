//! An audit row as one JSON line (the audit file and the spool), written straight into the
//! batch's buffer. Each member's quoted key is a constant and each value goes through
//! `serde_json` (its escaping, its number formatting), so a row costs the bytes of its values
//! rather than the derived serializer's work per member, key escaping included. The derived
//! `Deserialize` reads the lines back; a test holds this writer to the derived `Serialize`, byte
//! for byte.

use super::AuditRecord;
use serde::Serialize;

/// Appends `r` as one JSON object (no newline).
pub fn write(r: &AuditRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time_us\":");
    value(out, &r.time_us);
    member(out, ",\"request_id\":", &r.request_id);
    member(out, ",\"instance\":", r.instance.as_str());
    member(out, ",\"user_id\":", &r.user_id);
    member(out, ",\"tenant\":", &r.tenant);
    member(out, ",\"roles\":", &r.roles);
    member(out, ",\"scope\":", &r.scope);
    member(out, ",\"method\":", &r.method);
    member(out, ",\"tool\":", &r.tool);
    member(out, ",\"jsonrpc_id\":", &r.jsonrpc_id);
    member(out, ",\"outcome\":", &r.outcome);
    member(out, ",\"reason\":", &r.reason);
    member(out, ",\"rpc_error_code\":", &r.rpc_error_code);
    member(out, ",\"http_status\":", &r.http_status);
    member(out, ",\"upstream\":", &r.upstream);
    member(out, ",\"latency_ms\":", &r.latency_ms);
    member(out, ",\"upstream_latency_ms\":", &r.upstream_latency_ms);
    member(out, ",\"request_bytes\":", &r.request_bytes);
    member(out, ",\"response_bytes\":", &r.response_bytes);
    member(out, ",\"client_addr\":", &r.client_addr);
    member(out, ",\"session_hash\":", &r.session_hash);
    member(out, ",\"arguments_mode\":", r.arguments_mode.as_str());
    member(out, ",\"arguments\":", &r.arguments);
    // Members the row leaves out when it has none (`skip_serializing_if` on the record).
    let optional = [
        (",\"client_cert\":", &r.client_cert),
        (",\"job_id\":", &r.job_id),
        (",\"upstream_credential\":", &r.upstream_credential),
        (",\"policy_rule\":", &r.policy_rule),
        (",\"guard_hits\":", &r.guard_hits),
        (",\"trace_id\":", &r.trace_id),
    ];
    for (key, v) in optional {
        if let Some(v) = v {
            member(out, key, v.as_str());
        }
    }
    out.push(b'}');
}

fn member<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &'static str, v: &T) {
    out.extend_from_slice(key.as_bytes());
    value(out, v);
}

fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Into a `Vec`, and of types whose serialization cannot fail (strings, numbers, addresses,
    // the gateway's own enums): no error to report.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RequestId;
    use crate::outcome::Class;

    /// A row with nothing optional set, as a line of the file would hold it.
    fn bare() -> AuditRecord {
        let text = format!(
            r#"{{"time_us":1765000000123456,"request_id":"{}","instance":"gw-1","roles":[],
            "outcome":"denied","http_status":403,"latency_ms":0.0,"request_bytes":0,
            "response_bytes":0,"arguments_mode":"sha256"}}"#,
            RequestId::new()
        );
        serde_json::from_str(&text).unwrap()
    }

    fn line(r: &AuditRecord) -> Vec<u8> {
        let mut out = Vec::new();
        write(r, &mut out);
        out
    }

    /// Byte for byte what the derived serializer writes, for a bare row and a full one whose
    /// strings need escaping, and the derived reader gets the same row back.
    #[test]
    fn the_line_is_the_derived_serialization() {
        let odd = "q\"uote \\ back\nline\ttab \u{1} ctl é ✓ \u{2028}";
        let mut full = bare();
        full.user_id = Some(odd.into());
        full.tenant = Some("acme".into());
        full.roles = vec!["developer".into(), odd.into()];
        full.scope = Some("calculator".into());
        full.method = Some("tools/call".into());
        full.tool = Some("exact_calculate".into());
        full.jsonrpc_id = Some("\"a\\\"b\"".into());
        full.outcome = Class::ToolError;
        full.reason = Some(odd.into());
        full.rpc_error_code = Some(-32_602);
        full.upstream = Some("127.0.0.1:9000".into());
        full.latency_ms = 1.234_567_8;
        full.upstream_latency_ms = Some(0.1);
        full.request_bytes = 123;
        full.response_bytes = i64::MAX;
        full.client_addr = Some("[::1]:55123".parse().unwrap());
        full.session_hash = Some("ab12".into());
        full.arguments = Some(r#"{"expression":"2+3"}"#.into());
        full.client_cert = Some("CN=x".into());
        full.job_id = Some("j1".into());
        full.upstream_credential = Some("machine_token".into());
        full.policy_rule = Some(odd.into());
        full.guard_hits = Some("pii:in:redact:2".into());
        full.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        let mut some = bare();
        some.client_addr = Some("10.0.0.7:4000".parse().unwrap());
        some.latency_ms = f64::NAN;
        some.trace_id = Some("t".into());
        for r in [bare(), full, some] {
            let ours = line(&r);
            assert_eq!(
                String::from_utf8(ours.clone()).unwrap(),
                serde_json::to_string(&r).unwrap()
            );
            if !r.latency_ms.is_nan() {
                assert_eq!(serde_json::from_slice::<AuditRecord>(&ours).unwrap(), r);
            }
        }
    }
}
