//! `x86_mmio_decode`: decoding the guest instruction behind an emulated
//! MMIO access never panics on any bytes, and what it accepts is
//! self-consistent: a length within the bytes given, a general-purpose
//! register, a width the destination can hold, an immediate that fits the
//! width; the register a load writes merges as the CPU would.

use crate::arch::x86_64::mmio_decode::{self, MmioAccess, Source};
use tessera_fuzz::proptest::collection::vec;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};

/// Up to 15 bytes: random, or starting with the prefixes and opcodes of
/// the moves the decoder accepts (and some it must refuse).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        Just(vec![0x8a]),
        Just(vec![0x8b]),
        Just(vec![0x88]),
        Just(vec![0x89]),
        Just(vec![0xc6]),
        Just(vec![0xc7]),
        Just(vec![0x0f, 0xb6]),
        Just(vec![0x0f, 0xb7]),
        Just(vec![0x0f, 0xbe]),
        Just(vec![0x0f, 0xbf]),
        Just(vec![0x63]),
        Just(vec![0xa0]),
        Just(vec![0xa1]),
        Just(vec![0x01]),
        Just(vec![0xa4]),
    ];
    let prefix = prop_oneof![
        Just(vec![]),
        Just(vec![0x66]),
        Just(vec![0x48]),
        Just(vec![0x4c]),
        Just(vec![0x41]),
        Just(vec![0xf3]),
        Just(vec![0xf0]),
        Just(vec![0x66, 0x44]),
    ];
    prop_oneof![
        vec(any::<u8>(), 0..=15),
        (prefix, opcode, vec(any::<u8>(), 0..=10)).prop_map(|(mut p, o, rest)| {
            p.extend(o);
            p.extend(rest);
            p.truncate(15);
            p
        }),
    ]
}

#[test]
fn fuzz_x86_mmio_decode() {
    let input = (bytes(), any::<u64>(), any::<u64>());
    run_classified("x86_mmio_decode", input, |(bytes, old, value)| {
        let Ok((access, len)) = mmio_decode::decode(&bytes) else {
            return Ok(Some("refused"));
        };
        check((1..=bytes.len()).contains(&len), || {
            format!("{bytes:02x?}: length {len}")
        })?;
        match access {
            MmioAccess::Load {
                dest,
                width,
                sign_extend,
            } => {
                check(dest.index < 16 && [1, 2, 4, 8].contains(&dest.size), || {
                    format!("{bytes:02x?}: register {dest:?}")
                })?;
                check(
                    !dest.high_byte || (dest.size == 1 && dest.index < 4),
                    || format!("{bytes:02x?}: high byte {dest:?}"),
                )?;
                check(width.bytes() <= u64::from(dest.size), || {
                    format!("{bytes:02x?}: {width:?} into {dest:?}")
                })?;
                let r = mmio_decode::load_result(old, dest, width, sign_extend, value);
                let kept = match (dest.size, dest.high_byte) {
                    (1, true) => !0xff00,
                    (1, false) => !0xff,
                    (2, _) => !0xffff,
                    _ => 0,
                };
                check(r & kept == old & kept, || {
                    format!("{bytes:02x?}: {r:#x} from {old:#x} lost bits")
                })?;
                check(dest.size != 4 || r >> 32 == 0, || {
                    format!("{bytes:02x?}: 32-bit load left upper bits {r:#x}")
                })?;
                Ok(Some("load"))
            }
            MmioAccess::Store { src, width } => {
                match src {
                    Source::Imm(v) => check(width.truncate(v) == v, || {
                        format!("{bytes:02x?}: immediate {v:#x} wider than {width:?}")
                    })?,
                    Source::Reg(r) => {
                        check(r.index < 16 && u64::from(r.size) == width.bytes(), || {
                            format!("{bytes:02x?}: source {r:?} for {width:?}")
                        })?
                    }
                }
                Ok(Some("store"))
            }
        }
    });
}
