//! The protobuf codec of every Vexil service: prost's, except that a request
//! that cannot be decoded (malformed bytes, or nesting past the decoder's
//! recursion limit) is answered INVALID_ARGUMENT: the caller's input is at
//! fault, not the server.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::ProstEncoder;

#[derive(Debug, Clone)]
pub struct ProstCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProstCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for ProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder { _type: PhantomData }
    }
}

#[derive(Debug)]
pub struct ProstDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            Status::invalid_argument(format!("the message is not valid protobuf: {err}"))
        })
    }
}

/// A message encoded already: sent as it is. Watch encodes a change once
/// and hands the same bytes to every subscriber.
#[derive(Debug, Clone)]
pub struct Encoded(pub Bytes);

/// The codec of Watch: requests decoded like everywhere else, answers
/// written from their pre-encoded bytes.
#[derive(Debug, Clone)]
pub struct PreEncodedCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for PreEncodedCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<U> Codec for PreEncodedCodec<Encoded, U>
where
    U: Message + Default + Send + 'static,
{
    type Encode = Encoded;
    type Decode = U;
    type Encoder = EncodedWriter;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedWriter
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder { _type: PhantomData }
    }
}

#[derive(Debug)]
pub struct EncodedWriter;

/// Initial send buffer of a Watch stream. tonic's default (8 KiB) is
/// allocated per stream up front; most Watch streams idle, and the buffer
/// grows to the messages actually sent.
const WATCH_BUFFER_BYTES: usize = 512;

impl Encoder for EncodedWriter {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item.0);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(WATCH_BUFFER_BYTES, 32 * 1024)
    }
}
