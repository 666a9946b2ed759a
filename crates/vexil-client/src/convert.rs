//! Flags as the wire carries them, to the engine's model: `vexil-proto`'s
//! conversion, the one the server uses for writes.

use vexil_engine::{Flag, Segment};

use crate::pb;

/// The engine's flag for a flag the server sent; `None` for one this
/// client cannot evaluate: one that fails the conversion (a server never
/// sends one), or one needing a newer engine than this client's.
pub fn flag_from_pb(flag: pb::Flag) -> Option<Flag> {
    if flag.min_engine > vexil_engine::ENGINE {
        return None;
    }
    vexil_proto::convert::stored_flag_from_pb(flag).ok()
}

/// The engine's segment for one the server sent; `None` if it fails the
/// conversion (a server never sends one).
pub fn segment_from_pb(segment: pb::Segment) -> Option<Segment> {
    vexil_proto::convert::stored_segment_from_pb(segment).ok()
}
