//! Flags as the wire carries them, to the engine's model: `vexil-proto`'s
//! conversion, the one the server uses for writes.

use vexil_engine::Flag;

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
