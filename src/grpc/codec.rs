//! The protobuf codec of every Vexil service: prost's, except that a request
//! that cannot be decoded (malformed bytes, or nesting past the decoder's
//! recursion limit) is answered INVALID_ARGUMENT: the caller's input is at
//! fault, not the server.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
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

impl<U> Default for ProstDecoder<U> {
    fn default() -> Self {
        Self { _type: PhantomData }
    }
}

impl<U: Message + Default> Decoder for ProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            // prost names this failure only in its text.
            if err.to_string().contains("recursion limit reached") {
                return Status::invalid_argument(format!(
                    "the message nests too deeply to decode: {}",
                    crate::service::openfeature::too_deep()
                ));
            }
            Status::invalid_argument(format!("the message is not valid protobuf: {err}"))
        })
    }
}
