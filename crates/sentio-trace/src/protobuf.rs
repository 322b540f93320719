//! OTLP's protobuf encoding of an `ExportTraceServiceRequest`, written by hand: Sentio sends five
//! small messages, which does not pay for a code generator and its build step. Field numbers are
//! those of `opentelemetry/proto/trace/v1/trace.proto` and its neighbours; the tests decode the
//! output with the official Python bindings (`tests/otlp_decode.py`).

use crate::Span;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn message_field(out: &mut Vec<u8>, field: u32, encode: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    encode(&mut inner);
    bytes_field(out, field, &inner);
}

fn varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    key(out, field, VARINT);
    varint(out, value);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, value: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A `KeyValue` with a string `AnyValue`.
fn string_attribute(out: &mut Vec<u8>, field: u32, name: &str, value: &str) {
    message_field(out, field, |kv| {
        bytes_field(kv, 1, name.as_bytes());
        message_field(kv, 2, |any| bytes_field(any, 1, value.as_bytes()));
    });
}

/// Hex ids as the raw bytes protobuf carries (an invalid id becomes empty, which OTLP reads as
/// "no id").
fn id_bytes(hex: &str) -> Vec<u8> {
    if !hex.len().is_multiple_of(2) {
        return Vec::new();
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default()
}

fn span(out: &mut Vec<u8>, s: &Span) {
    bytes_field(out, 1, &id_bytes(&s.trace_id));
    bytes_field(out, 2, &id_bytes(&s.span_id));
    if let Some(parent) = &s.parent_span_id {
        bytes_field(out, 4, &id_bytes(parent));
    }
    bytes_field(out, 5, s.name.as_bytes());
    varint_field(out, 6, s.kind as u64);
    let nanos = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    fixed64_field(out, 7, nanos(s.start_unix_nanos));
    fixed64_field(out, 8, nanos(s.end_unix_nanos));
    for (name, value) in &s.attributes {
        string_attribute(out, 9, name, value);
    }
    // Status { code = 3 }: 1 OK, 2 ERROR.
    message_field(out, 15, |status| {
        varint_field(status, 3, if s.error { 2 } else { 1 })
    });
}

/// The `ExportTraceServiceRequest` for `spans`: the same content as [`crate::export_body`].
pub fn export_request(service_name: &str, spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::new();
    message_field(&mut out, 1, |resource_spans| {
        message_field(resource_spans, 1, |resource| {
            string_attribute(resource, 1, "service.name", service_name);
        });
        message_field(resource_spans, 2, |scope_spans| {
            message_field(scope_spans, 1, |scope| bytes_field(scope, 1, b"sentio"));
            for s in spans {
                message_field(scope_spans, 2, |out| span(out, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_examples_of_the_protobuf_documentation() {
        // protobuf.dev/programming-guides/encoding: 150 in field 1 is `08 96 01`; "testing" in
        // field 2 is `12 07 74 65 73 74 69 6e 67`.
        let mut out = Vec::new();
        varint_field(&mut out, 1, 150);
        assert_eq!(out, [0x08, 0x96, 0x01]);
        let mut out = Vec::new();
        bytes_field(&mut out, 2, b"testing");
        assert_eq!(out, [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
        let mut out = Vec::new();
        fixed64_field(&mut out, 7, 1);
        assert_eq!(out, [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn ids_are_raw_bytes_and_bad_ones_are_empty() {
        assert_eq!(
            id_bytes("00f067aa0ba902b7"),
            [0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(id_bytes("xyz").is_empty());
        assert!(id_bytes("zz").is_empty());
    }
}
