//! `insn_decode`: the ISV=0 load/store decoder never panics, refuses every
//! form it must not emulate, and what it accepts agrees with the A64
//! encoding fields (registers, width, offset ranges, base update).

use crate::arch::aarch64::insn::{self, Offset, Writeback};
use crate::exit::AccessWidth;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};

/// Instructions: any word, or one forced into the load/store single or
/// pair classes (where the decoder says yes), with the SIMD/FP bit and the
/// other class bits left random.
fn instruction() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        any::<u32>().prop_map(|i| i & !0x3e00_0000 | 0x3800_0000), // single, V random
        any::<u32>().prop_map(|i| i & !0x3f00_0000 | 0x3900_0000), // single, unsigned offset
        any::<u32>().prop_map(|i| i & !0x3f20_0c00 | 0x3820_0800), // single, register offset
        any::<u32>().prop_map(|i| i & !0x3a00_0000 | 0x2800_0000), // pair
        any::<u32>().prop_map(|i| i & !0x3f00_0000 | 0x0800_0000), // exclusives
    ]
}

#[test]
fn fuzz_insn_decode() {
    let input = (instruction(), any::<[u64; 31]>(), any::<u64>());
    run_classified("insn_decode", input, |(word, regs, raw)| {
        let reg_value = |r: u8| regs[usize::from(r) % 31];
        let decoded = insn::decode(word);
        let class = word >> 24 & 0x3f;
        let simd = word >> 27 & 1 == 1 && word >> 25 & 1 == 0 && word >> 26 & 1 == 1;
        let exclusive = class == 0x08;
        let atomic = class == 0x38 && word >> 21 & 1 == 1 && word >> 10 & 3 == 0;
        let unprivileged = class == 0x38 && word >> 21 & 1 == 0 && word >> 10 & 3 == 2;
        if simd || exclusive || atomic || unprivileged {
            check(decoded.is_none(), || {
                format!("{word:#010x} must be refused, decoded {decoded:?}")
            })?;
            return Ok(Some("refused as unsupported"));
        }
        let Some(d) = decoded else {
            return Ok(Some("refused"));
        };
        check(
            u32::from(d.rt) == word & 31 && u32::from(d.rn) == word >> 5 & 31,
            || format!("{word:#010x}: registers of {d:?}"),
        )?;
        check(d.is_load || !d.sign_extend, || {
            format!("{word:#010x}: store sign-extends")
        })?;
        let bytes = d.width.bytes();
        match d.rt2 {
            Some(rt2) => {
                let scaled = match d.offset {
                    Offset::Imm(imm) => {
                        imm % bytes as i64 == 0 && (-64..64).contains(&(imm / bytes as i64))
                    }
                    Offset::Reg { .. } => false,
                };
                check(
                    u32::from(rt2) == word >> 10 & 31
                        && matches!(d.width, AccessWidth::Word | AccessWidth::Double)
                        && d.total_bytes() == 2 * bytes
                        && scaled,
                    || format!("{word:#010x}: pair {d:?}"),
                )?;
            }
            None => {
                check(
                    bytes == 1 << (word >> 30) && d.total_bytes() == bytes,
                    || format!("{word:#010x}: width of {d:?}"),
                )?;
                let in_range = match d.offset {
                    Offset::Imm(imm) if word >> 24 & 1 == 1 => {
                        d.writeback == Writeback::None
                            && imm >= 0
                            && imm % bytes as i64 == 0
                            && imm / (bytes as i64) < 4096
                    }
                    Offset::Imm(imm) => (-256..256).contains(&imm),
                    Offset::Reg { rm, option, shift } => {
                        d.writeback == Writeback::None
                            && rm < 32
                            && matches!(option, 0b010 | 0b011 | 0b110 | 0b111)
                            && (shift == 0 || u64::from(shift) == bytes.trailing_zeros() as u64)
                    }
                };
                check(in_range, || format!("{word:#010x}: offset of {d:?}"))?;
            }
        }
        // Address arithmetic and the loaded value, for any register file.
        let offset = d.offset_value(reg_value);
        let access = d.access_offset(reg_value);
        check(
            access
                == if d.writeback == Writeback::Post {
                    0
                } else {
                    offset
                },
            || format!("{word:#010x}: access offset {access} vs offset {offset}"),
        )?;
        if let Offset::Reg { rm: 31, .. } = d.offset {
            check(offset == 0, || {
                format!("{word:#010x}: xzr offset is {offset}")
            })?;
        }
        let loaded = d.load_result(raw);
        check(
            d.width.truncate(loaded) == d.width.truncate(raw) && (d.reg_is_64 || loaded >> 32 == 0),
            || format!("{word:#010x}: load of {raw:#x} gave {loaded:#x}"),
        )?;
        Ok(Some(if d.rt2.is_some() {
            "decoded pairs"
        } else {
            "decoded singles"
        }))
    });
}
