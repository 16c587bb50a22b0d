//! Decoder for the A64 load/store instructions a guest may use on MMIO when
//! the data-abort syndrome is not valid (ESR.ISV = 0): writeback forms,
//! register-offset forms and load/store pair. Pure: unit-tested on the host.

use crate::exit::AccessWidth;

/// How the base register changes after the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writeback {
    /// Base unchanged.
    None,
    /// Base += offset before the access (and written back).
    Pre,
    /// Access at base, then base += offset.
    Post,
}

/// Where the offset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// Immediate byte offset.
    Imm(i64),
    /// Register offset: `Rm`, extended per `option`, shifted left by `shift`.
    Reg {
        /// Offset register (31 = zero register).
        rm: u8,
        /// Extend option (ESR-style: 0b010 UXTW, 0b011 LSL, 0b110 SXTW, 0b111 SXTX).
        option: u8,
        /// Left shift applied after extension.
        shift: u8,
    },
}

/// A decoded load or store of general-purpose registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStore {
    /// Load (true) or store.
    pub is_load: bool,
    /// Width of each element.
    pub width: AccessWidth,
    /// Loaded value is sign-extended.
    pub sign_extend: bool,
    /// Destination is an X register (else W, upper half zeroed).
    pub reg_is_64: bool,
    /// Transfer register (31 = zero register).
    pub rt: u8,
    /// Second transfer register of a pair.
    pub rt2: Option<u8>,
    /// Base register (31 = stack pointer).
    pub rn: u8,
    /// Offset.
    pub offset: Offset,
    /// Base update.
    pub writeback: Writeback,
}

fn sext(value: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((value as i64) << shift) >> shift
}

/// Decodes `insn`, or `None` if it is not a general-purpose load/store this
/// emulator supports (SIMD/FP, exclusives, atomics, prefetch...).
pub fn decode(insn: u32) -> Option<LoadStore> {
    let rt = (insn & 0x1f) as u8;
    let rn = ((insn >> 5) & 0x1f) as u8;
    if insn & 0x3a00_0000 == 0x2800_0000 {
        return decode_pair(insn, rt, rn);
    }
    // Single register: size[31:30] 111 V[26]=0 0 x[24] opc[23:22] (V=1 is SIMD/FP).
    if insn & 0x3f00_0000 != 0x3900_0000 && insn & 0x3f00_0000 != 0x3800_0000 {
        return None;
    }
    let size = insn >> 30;
    let opc = (insn >> 22) & 3;
    let width = AccessWidth::from_log2(size);
    let (is_load, sign_extend, reg_is_64) = match (size, opc) {
        (_, 0) => (false, false, size == 3),
        (_, 1) => (true, false, size == 3),
        (0..=2, 2) => (true, true, true),
        (0..=1, 3) => (true, true, false),
        _ => return None, // PRFM, unallocated
    };
    let (offset, writeback) = if insn & 0x0100_0000 != 0 {
        // Unsigned immediate, scaled by the access size.
        (
            Offset::Imm((((insn >> 10) & 0xfff) << size) as i64),
            Writeback::None,
        )
    } else if insn & (1 << 21) == 0 {
        let imm9 = sext((insn >> 12) & 0x1ff, 9);
        match (insn >> 10) & 3 {
            0 => (Offset::Imm(imm9), Writeback::None), // LDUR/STUR
            1 => (Offset::Imm(imm9), Writeback::Post),
            3 => (Offset::Imm(imm9), Writeback::Pre),
            _ => return None, // unprivileged LDTR/STTR: EL0 semantics, not emulated
        }
    } else if (insn >> 10) & 3 == 2 {
        let option = ((insn >> 13) & 7) as u8;
        if option & 2 == 0 {
            return None;
        }
        let shift = if insn & (1 << 12) != 0 { size as u8 } else { 0 };
        (
            Offset::Reg {
                rm: ((insn >> 16) & 0x1f) as u8,
                option,
                shift,
            },
            Writeback::None,
        )
    } else {
        return None; // atomics and other encodings sharing the prefix
    };
    Some(LoadStore {
        is_load,
        width,
        sign_extend,
        reg_is_64,
        rt,
        rt2: None,
        rn,
        offset,
        writeback,
    })
}

fn decode_pair(insn: u32, rt: u8, rn: u8) -> Option<LoadStore> {
    // opc[31:30] 101 V[26] 0 type[24:23] L[22] imm7[21:15] Rt2[14:10] Rn Rt
    if insn & (1 << 26) != 0 {
        return None; // SIMD/FP
    }
    let opc = insn >> 30;
    let is_load = insn & (1 << 22) != 0;
    let (width, sign_extend, reg_is_64) = match (opc, is_load) {
        (0, _) => (AccessWidth::Word, false, false),
        (1, true) => (AccessWidth::Word, true, true), // LDPSW
        (2, _) => (AccessWidth::Double, false, true),
        _ => return None,
    };
    let writeback = match (insn >> 23) & 3 {
        0 | 2 => Writeback::None,
        1 => Writeback::Post,
        _ => Writeback::Pre,
    };
    let scale = if width == AccessWidth::Double { 3 } else { 2 };
    let imm = sext((insn >> 15) & 0x7f, 7) << scale;
    Some(LoadStore {
        is_load,
        width,
        sign_extend,
        reg_is_64,
        rt,
        rt2: Some(((insn >> 10) & 0x1f) as u8),
        rn,
        offset: Offset::Imm(imm),
        writeback,
    })
}

impl LoadStore {
    /// Offset added to the base for the access address (zero for post-index).
    pub fn access_offset(&self, reg_value: impl Fn(u8) -> u64) -> i64 {
        if self.writeback == Writeback::Post {
            return 0;
        }
        self.offset_value(reg_value)
    }

    /// Value of the offset operand.
    pub fn offset_value(&self, reg_value: impl Fn(u8) -> u64) -> i64 {
        match self.offset {
            Offset::Imm(imm) => imm,
            Offset::Reg { rm, option, shift } => {
                let raw = if rm == 31 { 0 } else { reg_value(rm) };
                let extended = match option {
                    0b010 => raw as u32 as u64,               // UXTW
                    0b110 => raw as u32 as i32 as i64 as u64, // SXTW
                    _ => raw,                                 // LSL / SXTX
                };
                (extended << shift) as i64
            }
        }
    }

    /// Number of bytes accessed in total.
    pub fn total_bytes(&self) -> u64 {
        self.width.bytes() * if self.rt2.is_some() { 2 } else { 1 }
    }

    /// Value to place in a destination register for a loaded element.
    pub fn load_result(&self, raw: u64) -> u64 {
        self.width
            .extend_load(raw, self.sign_extend, self.reg_is_64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldr_w_post_index() {
        // ldr w1, [x2], #4  = 0xb8404441
        let d = decode(0xb840_4441).unwrap();
        assert!(d.is_load);
        assert_eq!(d.width, AccessWidth::Word);
        assert_eq!((d.rt, d.rn), (1, 2));
        assert_eq!(d.offset, Offset::Imm(4));
        assert_eq!(d.writeback, Writeback::Post);
        assert_eq!(d.access_offset(|_| 0), 0);
    }

    #[test]
    fn str_x_pre_index_negative() {
        // str x3, [sp, #-16]!  = 0xf81f0fe3
        let d = decode(0xf81f_0fe3).unwrap();
        assert!(!d.is_load);
        assert_eq!(d.width, AccessWidth::Double);
        assert_eq!((d.rt, d.rn), (3, 31));
        assert_eq!(d.offset, Offset::Imm(-16));
        assert_eq!(d.writeback, Writeback::Pre);
    }

    #[test]
    fn ldr_unsigned_offset_is_scaled() {
        // ldr w0, [x1, #0x18] = 0xb9401820
        let d = decode(0xb940_1820).unwrap();
        assert_eq!(d.offset, Offset::Imm(0x18));
        assert_eq!(d.writeback, Writeback::None);
    }

    #[test]
    fn ldrsb_to_w_sign_extends_into_32_bits() {
        // ldrsb w0, [x1] = 0x39c00020
        let d = decode(0x39c0_0020).unwrap();
        assert!(d.sign_extend && !d.reg_is_64);
        assert_eq!(d.load_result(0x80), 0xffff_ff80);
        // ldrsh x0, [x1] = 0x79800020
        let d = decode(0x7980_0020).unwrap();
        assert!(d.sign_extend && d.reg_is_64);
        assert_eq!(d.load_result(0x8000), 0xffff_ffff_ffff_8000);
    }

    #[test]
    fn register_offset_with_shift() {
        // ldr x0, [x1, x2, lsl #3] = 0xf8627820
        let d = decode(0xf862_7820).unwrap();
        assert_eq!(
            d.offset,
            Offset::Reg {
                rm: 2,
                option: 0b011,
                shift: 3
            }
        );
        assert_eq!(d.offset_value(|r| if r == 2 { 5 } else { 0 }), 40);
        // ldr w0, [x1, w2, sxtw] = 0xb862c820
        let d = decode(0xb862_c820).unwrap();
        assert_eq!(d.offset_value(|_| 0xffff_ffff), -1);
    }

    #[test]
    fn load_pair_and_store_pair() {
        // ldp x1, x2, [x3, #16] = 0xa9410861
        let d = decode(0xa941_0861).unwrap();
        assert!(d.is_load);
        assert_eq!((d.rt, d.rt2, d.rn), (1, Some(2), 3));
        assert_eq!(d.offset, Offset::Imm(16));
        assert_eq!(d.total_bytes(), 16);
        // stp w1, w2, [x3], #8 = 0x28810861
        let d = decode(0x2881_0861).unwrap();
        assert!(!d.is_load);
        assert_eq!(d.width, AccessWidth::Word);
        assert_eq!(d.writeback, Writeback::Post);
        assert_eq!(d.offset, Offset::Imm(8));
    }

    #[test]
    fn unsupported_forms_are_rejected() {
        assert_eq!(decode(0xd503_201f), None); // nop
        assert_eq!(decode(0xbd40_0020), None); // ldr s0, [x1] (FP)
        assert_eq!(decode(0xf980_0020), None); // prfm
        assert_eq!(decode(0xb820_0020), None); // ldadd w0, w0, [x1]
        assert_eq!(decode(0xad40_0420), None); // ldp q0, q1 (FP pair)
    }
}
