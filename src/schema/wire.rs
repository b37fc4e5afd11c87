//! The signed payload's protobuf wire format, checked before it is decoded.
//!
//! Decoding allocates per element: two bytes on the wire (`42 00`, an empty observation) become a
//! whole `Observation` in memory, so a 4 MiB payload could cost hundreds of megabytes before the
//! observation limit is looked at. And protobuf decoders skip fields they do not know, while the
//! gateway stores the signed bytes verbatim: anything outside the schema would be kept forever,
//! past every limit the schema sets. [`check_payload`] walks the bytes once, allocating nothing
//! per element, against the message shapes of the compiled wire contract (the descriptor set
//! that `build.rs` writes, never a hand-kept copy): every field must be one the schema defines,
//! with its wire type, and every repeated field is counted against its limit.

use std::{collections::HashMap, sync::LazyLock};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};

use super::{Limits, Rule, Violation};

/// The payload's message type.
const BODY: &str = ".focalgate.v1.SubmissionBody";
/// Deepest nesting of messages in a payload (SubmissionBody → Observation → Timestamp).
const MAX_DEPTH: usize = 4;

/// The protobuf wire types (encoding spec, "Message Structure").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WireType {
    Varint = 0,
    I64 = 1,
    Len = 2,
    I32 = 5,
}

#[derive(Debug)]
struct Field {
    name: String,
    wire: WireType,
    repeated: bool,
    /// The message type of a message field, fully qualified (`.pkg.Name`).
    message: Option<String>,
}

#[derive(Debug, Default)]
struct Shape {
    /// The message's own name, for error messages.
    name: String,
    fields: HashMap<u32, Field>,
}

/// Every message of the wire contract, by fully qualified name.
static SHAPES: LazyLock<HashMap<String, Shape>> =
    LazyLock::new(|| shapes(crate::proto::FILE_DESCRIPTOR_SET));

fn shapes(descriptor_set: &[u8]) -> HashMap<String, Shape> {
    let mut out = HashMap::new();
    // The descriptor set is compiled in by build.rs: if it did not decode, no payload would
    // pass [`check_payload`] (every field unknown), which the tests would show at once.
    let set = prost_types::FileDescriptorSet::decode(descriptor_set).unwrap_or_default();
    for file in &set.file {
        let package = file.package();
        for message in &file.message_type {
            let name = format!(".{package}.{}", message.name());
            let mut shape = Shape {
                name: message.name().to_owned(),
                fields: HashMap::new(),
            };
            for f in &message.field {
                let wire = match f.r#type() {
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => WireType::I64,
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => WireType::I32,
                    Type::String | Type::Bytes | Type::Message | Type::Group => WireType::Len,
                    _ => WireType::Varint,
                };
                shape.fields.insert(
                    f.number() as u32,
                    Field {
                        name: f.name().to_owned(),
                        wire,
                        repeated: f.label() == Label::Repeated,
                        message: (f.r#type() == Type::Message).then(|| f.type_name().to_owned()),
                    },
                );
            }
            out.insert(name, shape);
        }
    }
    // google.protobuf.Timestamp, whose file the set may name without holding.
    out.entry(".google.protobuf.Timestamp".to_owned())
        .or_insert_with(|| Shape {
            name: "Timestamp".into(),
            fields: [(1, "seconds"), (2, "nanos")]
                .into_iter()
                .map(|(n, name)| {
                    let field = Field {
                        name: name.into(),
                        wire: WireType::Varint,
                        repeated: false,
                        message: None,
                    };
                    (n, field)
                })
                .collect(),
        });
    out
}

/// Checks a signed `SubmissionBody` before it is decoded: only fields the schema defines, each
/// with its wire type, at most `limits.max_observations` observations and
/// `limits.max_transit` transit areas per observation. The first problem is returned, with the
/// field path (`observations[3].transit_area`) and, for an unknown field, its number. The walk
/// allocates nothing on the way, however many elements the payload holds.
pub fn check_payload(payload: &[u8], limits: &Limits) -> Result<(), Violation> {
    let limit = |field: &str| match field {
        "observations" => Some((
            limits.max_observations,
            "observations",
            Rule::TooManyObservations,
        )),
        "transit_area" => Some((
            limits.max_transit,
            "transit areas",
            Rule::TooManyTransitAreas,
        )),
        _ => None,
    };
    walk(&SHAPES, BODY, payload, 0, &limit).map_err(|v| {
        if v.field.is_empty() {
            Violation::new("payload", v.rule, v.detail)
        } else {
            v
        }
    })
}

/// A repeated field's bound: the most elements, what they are called, the rule.
type Limit<'a> = dyn Fn(&str) -> Option<(usize, &'static str, Rule)> + 'a;

/// Most distinct bounded repeated fields in one message.
const MAX_BOUNDED: usize = 4;

/// Walks one message; a violation's field path is relative to it (empty: the message itself).
fn walk(
    shapes: &HashMap<String, Shape>,
    type_name: &str,
    mut bytes: &[u8],
    depth: usize,
    limit: &Limit<'_>,
) -> Result<(), Violation> {
    let here = |rule, what: String| Violation::new("", rule, what);
    if depth > MAX_DEPTH {
        return Err(here(
            Rule::PayloadMalformed,
            "messages nested too deeply".into(),
        ));
    }
    let Some(shape) = shapes.get(type_name) else {
        return Err(here(
            Rule::PayloadMalformed,
            format!("{type_name} is not in the schema"),
        ));
    };
    // Elements of each repeated field seen so far (a fixed array: nothing allocated per message).
    let mut counts = [(0u32, 0usize); MAX_BOUNDED + 1];
    while !bytes.is_empty() {
        let key = varint(&mut bytes)
            .ok_or_else(|| here(Rule::PayloadMalformed, "truncated field key".into()))?;
        let number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let wire = (key & 7) as u8;
        if ![0, 1, 2, 5].contains(&wire) {
            // 3 and 4 are the deprecated groups, which the schema has none of; 6 and 7 do not exist.
            return Err(here(
                Rule::PayloadMalformed,
                format!(
                    "not a {}: wire type {wire} at field number {number}",
                    shape.name
                ),
            ));
        }
        let Some(field) = shape.fields.get(&number) else {
            return Err(here(
                Rule::UnknownField,
                format!(
                    "field number {number} is not a field of {}: a signed payload may carry only what the schema defines",
                    shape.name
                ),
            ));
        };
        let at = |rule, what: String| Violation::new(field.name.clone(), rule, what);
        // Packed repeated scalars arrive as one length-delimited field; the schema has none,
        // but the wire format allows them, so they are accepted as such.
        let packed = field.repeated && field.message.is_none() && wire == WireType::Len as u8;
        if wire != field.wire as u8 && !packed {
            return Err(at(
                Rule::PayloadMalformed,
                format!("wire type {wire} where the schema has {:?}", field.wire),
            ));
        }
        let value = match wire {
            0 => {
                varint(&mut bytes)
                    .ok_or_else(|| at(Rule::PayloadMalformed, "truncated varint".into()))?;
                &[][..]
            }
            1 => take(&mut bytes, 8)
                .ok_or_else(|| at(Rule::PayloadMalformed, "truncated fixed64".into()))?,
            5 => take(&mut bytes, 4)
                .ok_or_else(|| at(Rule::PayloadMalformed, "truncated fixed32".into()))?,
            _ => {
                let len = varint(&mut bytes).and_then(|l| usize::try_from(l).ok());
                len.and_then(|len| take(&mut bytes, len)).ok_or_else(|| {
                    at(
                        Rule::PayloadMalformed,
                        "length past the end of the payload".into(),
                    )
                })?
            }
        };
        let mut index = 0;
        if field.repeated
            && let Some((max, _, _)) = limit(&field.name)
        {
            let slot = counts
                .iter()
                .position(|&(n, c)| n == number || c == 0)
                .ok_or_else(|| here(Rule::PayloadMalformed, "too many repeated fields".into()))?;
            counts[slot] = (number, counts[slot].1 + 1);
            index = counts[slot].1 - 1;
            if index >= max {
                continue; // counted; its contents are past the limit anyway
            }
        }
        if let Some(message) = &field.message {
            walk(shapes, message, value, depth + 1, limit).map_err(|v| {
                let element = if field.repeated {
                    format!("{}[{index}]", field.name)
                } else {
                    field.name.clone()
                };
                let path = if v.field.is_empty() {
                    element
                } else {
                    format!("{element}.{}", v.field)
                };
                Violation::new(path, v.rule, v.detail)
            })?;
        }
    }
    for (number, count) in counts.into_iter().filter(|&(_, c)| c > 0) {
        let Some(field) = shape.fields.get(&number) else {
            continue;
        };
        if let Some((max, noun, rule)) = limit(&field.name)
            && count > max
        {
            return Err(Violation::new(
                field.name.clone(),
                rule,
                format!("{count} {noun}, at most {max} allowed"),
            ));
        }
    }
    Ok(())
}

/// A base-128 varint (at most 10 bytes), advancing `bytes`; `None` if truncated.
pub(crate) fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Observation, SubmissionBody};

    fn body(observations: Vec<Observation>) -> SubmissionBody {
        SubmissionBody {
            dataflow: "ROUTES".into(),
            ref_area: "KAZ".into(),
            freq: "A".into(),
            time_period: "2024".into(),
            action: "R".into(),
            supersedes_revision: Some(0),
            prepared_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 2,
            }),
            observations,
        }
    }

    fn route() -> Observation {
        Observation {
            drug: "HEROIN".into(),
            transit_area: vec!["TJK".into(), "UZB".into()],
            n_seizures: Some(3),
            embargo_time: Some(prost_types::Timestamp::default()),
            ..Default::default()
        }
    }

    #[test]
    fn every_field_of_the_schema_passes() {
        let b = body(vec![route(), route()]);
        check_payload(&b.encode_to_vec(), &Limits::default()).unwrap();
        check_payload(&[], &Limits::default()).unwrap();
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_number_and_where_it_is() {
        let mut bytes = body(vec![route()]).encode_to_vec();
        // field 1000, length-delimited, 3 bytes
        bytes.extend_from_slice(&[0xc2, 0x3e, 3, b'a', b'b', b'c']);
        let v = check_payload(&bytes, &Limits::default()).unwrap_err();
        assert_eq!((v.field.as_str(), v.rule), ("payload", Rule::UnknownField));
        assert!(v.detail.contains("field number 1000"), "{}", v.detail);

        // inside the second observation: field 99, varint
        let mut second = route().encode_to_vec();
        second.extend_from_slice(&[0x98, 0x06, 1]);
        let mut bytes = body(vec![route()]).encode_to_vec();
        bytes.push(0x42);
        bytes.push(second.len() as u8);
        bytes.extend_from_slice(&second);
        let v = check_payload(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(v.field, "observations[1]");
        assert!(
            v.detail
                .contains("field number 99 is not a field of Observation")
        );
    }

    #[test]
    fn repeated_fields_are_counted_before_decoding() {
        let limits = Limits::default();
        let mut bytes = body(vec![route()]).encode_to_vec();
        for _ in 0..limits.max_observations {
            bytes.extend_from_slice(&[0x42, 0x00]);
        }
        let v = check_payload(&bytes, &limits).unwrap_err();
        assert_eq!(
            (v.field.as_str(), v.rule),
            ("observations", Rule::TooManyObservations)
        );

        let mut o = route();
        o.transit_area = vec!["TJK".into(); limits.max_transit + 1];
        let v = check_payload(&body(vec![route(), o]).encode_to_vec(), &limits).unwrap_err();
        assert_eq!(
            (v.field.as_str(), v.rule),
            ("observations[1].transit_area", Rule::TooManyTransitAreas)
        );
    }

    #[test]
    fn malformed_bytes_are_refused_not_panicked_on() {
        let good = body(vec![route()]).encode_to_vec();
        let mut wrong = Vec::new();
        for cut in 0..good.len() {
            // Every truncation either parses (at a field boundary) or is refused.
            let _ = check_payload(&good[..cut], &Limits::default());
        }
        // A string field sent as a varint.
        let v = check_payload(&[0x08, 0x01], &Limits::default()).unwrap_err();
        if v.rule != Rule::PayloadMalformed || v.field != "dataflow" {
            wrong.push(format!("{v}"));
        }
        // An unterminated varint.
        let v = check_payload(&[0x08, 0xff, 0xff], &Limits::default()).unwrap_err();
        if v.rule != Rule::PayloadMalformed {
            wrong.push(format!("{v}"));
        }
        assert!(wrong.is_empty(), "{wrong:?}");
    }
}
