//! The gRPC codec of every service and client: prost, with the fields of each message counted
//! before it is decoded.
//!
//! Decoding allocates per element: an empty element of a repeated field is two bytes on the
//! wire but a whole struct (or `String`) in memory, 24 to 300 times more. The message size limit
//! alone would let one 4 MiB request cost a few hundred megabytes before any handler looks at
//! it. So a message whose top-level field repeats more than [`MAX_REPEATED`] times is refused
//! (`RESOURCE_EXHAUSTED`) before decoding; handlers then bound each field to what it means (a
//! query's filters, a submission's observations, see [`crate::schema::wire`]).

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::schema::wire::varint;

/// Most elements of one repeated field at the top of a message, in either direction. The
/// largest legitimate ones are far below it: `GetEntries` answers at most 1,000 entries, a
/// query names at most the 250 areas of CL_AREA per filter.
pub const MAX_REPEATED: u32 = 10_000;

/// Distinct field numbers counted per message: more than any message of the contract has.
const COUNTED_FIELDS: usize = 32;

/// [`tonic_prost::ProstCodec`] with [`count_fields`] before each decode.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// Counts, then decodes with prost.
#[derive(Debug)]
pub struct BoundedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        // tonic hands over one contiguous buffer per message; were it not, prost's own bounds
        // (the message size limit) would still hold.
        if buf.chunk().len() == buf.remaining() {
            count_fields(buf.chunk())?;
        }
        self.0.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Refuses a message one of whose top-level fields repeats more than [`MAX_REPEATED`] times.
/// Malformed bytes are left for prost to refuse.
pub fn count_fields(mut bytes: &[u8]) -> Result<(), Status> {
    let mut counts = [(0u32, 0u32); COUNTED_FIELDS];
    while let Some(key) = varint(&mut bytes) {
        let number = (key >> 3) as u32;
        let skipped = match key & 7 {
            0 => varint(&mut bytes).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut bytes).and_then(|l| usize::try_from(l).ok()),
            5 => Some(4),
            _ => None,
        };
        let Some(skip) = skipped.filter(|&n| n <= bytes.len()) else {
            return Ok(());
        };
        bytes = &bytes[skip..];
        if let Some(slot) = counts.iter_mut().find(|(n, c)| *n == number || *c == 0) {
            *slot = (number, slot.1 + 1);
            if slot.1 > MAX_REPEATED {
                return Err(Status::resource_exhausted(format!(
                    "field number {number} repeats more than {MAX_REPEATED} times in one message"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AggregateQuery, SignedEnvelope};

    #[test]
    fn repeated_fields_are_counted_and_everything_else_passes() {
        let q = AggregateQuery {
            ref_area: vec!["KAZ".into(); MAX_REPEATED as usize],
            drug: vec!["HEROIN".into(); 100],
            ..Default::default()
        };
        count_fields(&q.encode_to_vec()).unwrap();
        let q = AggregateQuery {
            ref_area: vec![String::new(); MAX_REPEATED as usize + 1],
            ..Default::default()
        };
        let status = count_fields(&q.encode_to_vec()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("field number 6"));

        let mut bomb = SignedEnvelope::default().encode_to_vec();
        for _ in 0..=MAX_REPEATED {
            bomb.extend_from_slice(&[0x1a, 0x00]); // an empty signature
        }
        assert!(count_fields(&bomb).is_err());
        // Malformed input is prost's to refuse.
        count_fields(&[0x0a, 0xff]).unwrap();
        count_fields(b"\x0f\x0f").unwrap();
    }
}
