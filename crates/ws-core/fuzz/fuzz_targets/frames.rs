//! Arbitrary bytes as the frame stream of an open connection, on both sides.
//!
//! Input: a control byte, the read sizes (see `ChunkPlan::take`), then the
//! stream. Bit 7 of the control byte selects small limits (64-byte frames,
//! 128-byte messages) so that the 1009 paths are reached too; bits 3 and 4
//! switch on permessage-deflate (see `deflate_from`).
//!
//! Invariants: no panic; after an error `next_event` yields nothing; the
//! output is whole, well-formed frames with at most one close, last; a
//! strict peer reads in it exactly what the events call for (pongs, close
//! echo, close on error); and reading the stream in pieces changes nothing
//! (with deflate, nothing but which violation is named).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_core::{Config, Role};
use ws_core_fuzz::{ChunkPlan, deflate_from, read_boundary_invariant, run_connection};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (plan, stream) = ChunkPlan::take(control, rest);
    let config = if control & 0x80 != 0 {
        Config::default().max_frame_size(64).max_message_size(128)
    } else {
        Config::default()
    };
    let deflate = deflate_from(control);
    for role in [Role::Server, Role::Client] {
        let pieces = run_connection(role, config.clone(), &deflate, stream, &plan);
        let whole = run_connection(role, config.clone(), &deflate, stream, &ChunkPlan::whole());
        if deflate.is_some() {
            assert_eq!(
                read_boundary_invariant(&pieces),
                read_boundary_invariant(&whole),
                "reading in pieces changed the outcome ({role:?})"
            );
        } else {
            assert_eq!(
                pieces, whole,
                "reading in pieces changed the outcome ({role:?})"
            );
        }
    }
});
