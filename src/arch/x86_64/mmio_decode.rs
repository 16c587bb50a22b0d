//! Decoding the guest instruction behind an EPT violation on emulated
//! MMIO (an EPT violation reports the address, not the instruction):
//! iced-x86 decodes the bytes fetched at the guest's RIP, and this module
//! keeps the forms a device access can be emulated from — a MOV, MOVZX or
//! MOVSX between one general-purpose register (or an immediate) and one
//! memory operand, of 1, 2, 4 or 8 bytes. Everything else (string moves,
//! read-modify-write, SSE, an instruction that does not decode) is an
//! [`Unsupported`] outcome the caller turns into the VM's policy.

use crate::exit::AccessWidth;
use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, Mnemonic, OpKind, Register};

/// A general-purpose register as an access names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpr {
    /// Encoding number: 0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP,
    /// 5 = RBP, 6 = RSI, 7 = RDI, 8-15 = R8-R15.
    pub index: u8,
    /// Bytes of the register the instruction names (1, 2, 4 or 8).
    pub size: u8,
    /// AH, CH, DH or BH: bits 15:8 of the register.
    pub high_byte: bool,
}

/// Where a store's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A register (its low `width` bytes, or bits 15:8 for AH-BH).
    Reg(Gpr),
    /// An immediate, already sign-extended to the access width.
    Imm(u64),
}

/// One emulatable MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioAccess {
    /// A load of `width` bytes into `dest`.
    Load {
        /// Destination register.
        dest: Gpr,
        /// Bytes read from the device.
        width: AccessWidth,
        /// MOVSX: sign-extend to the destination; otherwise zero-extend.
        sign_extend: bool,
    },
    /// A store of `width` bytes.
    Store {
        /// The value's origin.
        src: Source,
        /// Bytes written to the device.
        width: AccessWidth,
    },
}

/// Why an instruction cannot be emulated as an MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// The bytes do not decode to an instruction (or were cut short).
    Invalid,
    /// A valid instruction whose access is not a plain register or
    /// immediate move (string move, read-modify-write, vector...).
    Form(Mnemonic),
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Unsupported::Invalid => f.write_str("undecodable instruction"),
            Unsupported::Form(m) => write!(f, "unsupported instruction {m:?}"),
        }
    }
}

/// The width of an integer memory operand (vectors, floats, far
/// pointers and the like are not device accesses Tessera emulates).
fn width_of(size: MemorySize) -> Option<AccessWidth> {
    match size {
        MemorySize::UInt8 | MemorySize::Int8 => Some(AccessWidth::Byte),
        MemorySize::UInt16 | MemorySize::Int16 => Some(AccessWidth::Half),
        MemorySize::UInt32 | MemorySize::Int32 => Some(AccessWidth::Word),
        MemorySize::UInt64 | MemorySize::Int64 => Some(AccessWidth::Double),
        _ => None,
    }
}

/// The general-purpose register `r`, if it is one (not a segment, vector
/// or control register).
fn gpr(r: Register) -> Option<Gpr> {
    // iced numbers the registers in blocks of 16 in encoding order: RAX..R15,
    // EAX..R15D, AX..R15W; the byte registers are AL..BL, AH..BH, SPL..DIL,
    // R8L..R15L.
    let n = r as u32;
    let from = |first: Register| n.checked_sub(first as u32).filter(|&i| i < 16);
    let (index, size, high_byte) = if let Some(i) = from(Register::RAX) {
        (i, 8, false)
    } else if let Some(i) = from(Register::EAX) {
        (i, 4, false)
    } else if let Some(i) = from(Register::AX) {
        (i, 2, false)
    } else if let Some(i) = n.checked_sub(Register::AH as u32).filter(|&i| i < 4) {
        (i, 1, true)
    } else if let Some(i) = n.checked_sub(Register::AL as u32).filter(|&i| i < 4) {
        (i, 1, false)
    } else if let Some(i) = n.checked_sub(Register::SPL as u32).filter(|&i| i < 12) {
        (i + 4, 1, false)
    } else {
        return None;
    };
    Some(Gpr {
        index: index as u8,
        size,
        high_byte,
    })
}

/// Decodes the instruction at the start of `bytes` (fetched at a 64-bit
/// guest's RIP) into the MMIO access it makes, with its length.
pub fn decode(bytes: &[u8]) -> Result<(MmioAccess, usize), Unsupported> {
    let mut decoder = Decoder::new(64, bytes, DecoderOptions::NONE);
    let insn: Instruction = decoder.decode();
    if insn.is_invalid() {
        return Err(Unsupported::Invalid);
    }
    let form = Err(Unsupported::Form(insn.mnemonic()));
    // One memory operand and one register/immediate, no prefixes that
    // repeat or lock the access.
    if insn.op_count() != 2
        || insn.has_rep_prefix()
        || insn.has_repne_prefix()
        || insn.has_lock_prefix()
    {
        return form;
    }
    let Some(width) = width_of(insn.memory_size()) else {
        return form;
    };
    let access = match (insn.mnemonic(), insn.op0_kind(), insn.op1_kind()) {
        (
            Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd,
            OpKind::Register,
            OpKind::Memory,
        ) => {
            let Some(dest) = gpr(insn.op0_register()) else {
                return form;
            };
            MmioAccess::Load {
                dest,
                width,
                sign_extend: matches!(insn.mnemonic(), Mnemonic::Movsx | Mnemonic::Movsxd),
            }
        }
        (Mnemonic::Mov, OpKind::Memory, OpKind::Register) => {
            let Some(src) = gpr(insn.op1_register()) else {
                return form;
            };
            MmioAccess::Store {
                src: Source::Reg(src),
                width,
            }
        }
        (Mnemonic::Mov, OpKind::Memory, imm) => {
            let value = match imm {
                OpKind::Immediate8 => u64::from(insn.immediate8()),
                OpKind::Immediate16 => u64::from(insn.immediate16()),
                OpKind::Immediate32 => u64::from(insn.immediate32()),
                OpKind::Immediate32to64 => insn.immediate32to64() as u64,
                _ => return form,
            };
            MmioAccess::Store {
                src: Source::Imm(width.truncate(value)),
                width,
            }
        }
        _ => return form,
    };
    Ok((access, insn.len()))
}

/// The register's new value after a load put `value` (`width` bytes from
/// the device) into it, given its `old` value: 1- and 2-byte destinations
/// keep the rest of the register, 4-byte ones zero-extend to 64 bits (as
/// every 32-bit register write in 64-bit mode), MOVSX sign-extends to the
/// destination's size first.
pub fn load_result(old: u64, dest: Gpr, width: AccessWidth, sign_extend: bool, value: u64) -> u64 {
    let v = if sign_extend {
        width.sign_extend(value)
    } else {
        width.truncate(value)
    };
    match (dest.size, dest.high_byte) {
        (1, true) => (old & !0xff00) | (v & 0xff) << 8,
        (1, false) => (old & !0xff) | (v & 0xff),
        (2, _) => (old & !0xffff) | (v & 0xffff),
        (4, _) => v & 0xffff_ffff,
        _ => v,
    }
}

/// The bytes a store of `width` takes from register value `reg` (`src`
/// as decoded).
pub fn store_value(reg: u64, src: Gpr, width: AccessWidth) -> u64 {
    if src.high_byte {
        (reg >> 8) & 0xff
    } else {
        width.truncate(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(index: u8, size: u8) -> Gpr {
        Gpr {
            index,
            size,
            high_byte: false,
        }
    }

    #[test]
    fn loads_of_every_width() {
        // mov al, [rdx]
        assert_eq!(
            decode(&[0x8a, 0x02]),
            Ok((
                MmioAccess::Load {
                    dest: reg(0, 1),
                    width: AccessWidth::Byte,
                    sign_extend: false
                },
                2
            ))
        );
        // mov bx, [rdi+0x30]
        assert_eq!(
            decode(&[0x66, 0x8b, 0x5f, 0x30]),
            Ok((
                MmioAccess::Load {
                    dest: reg(3, 2),
                    width: AccessWidth::Half,
                    sign_extend: false
                },
                4
            ))
        );
        // mov eax, [rdx]
        assert_eq!(
            decode(&[0x8b, 0x02]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: reg(0, 4),
                width: AccessWidth::Word,
                sign_extend: false
            })
        );
        // mov r9, [rsi] (REX.WR)
        assert_eq!(
            decode(&[0x4c, 0x8b, 0x0e]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: reg(9, 8),
                width: AccessWidth::Double,
                sign_extend: false
            })
        );
        // mov ah, [rdx]
        assert_eq!(
            decode(&[0x8a, 0x22]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: Gpr {
                    index: 0,
                    size: 1,
                    high_byte: true
                },
                width: AccessWidth::Byte,
                sign_extend: false
            })
        );
        // mov eax, [0xfee00030] (moffs form, A1 with a 64-bit address)
        assert_eq!(
            decode(&[0xa1, 0x30, 0x00, 0xe0, 0xfe, 0, 0, 0, 0]).map(|d| d.1),
            Ok(9)
        );
    }

    #[test]
    fn extending_loads() {
        // movzx eax, byte [rdx]
        assert_eq!(
            decode(&[0x0f, 0xb6, 0x02]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: reg(0, 4),
                width: AccessWidth::Byte,
                sign_extend: false
            })
        );
        // movsx rcx, word [rdx]
        assert_eq!(
            decode(&[0x48, 0x0f, 0xbf, 0x0a]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: reg(1, 8),
                width: AccessWidth::Half,
                sign_extend: true
            })
        );
        // movsxd rax, dword [rdx]
        assert_eq!(
            decode(&[0x48, 0x63, 0x02]).map(|d| d.0),
            Ok(MmioAccess::Load {
                dest: reg(0, 8),
                width: AccessWidth::Word,
                sign_extend: true
            })
        );
    }

    #[test]
    fn stores_from_registers_and_immediates() {
        // mov [rdx], cl
        assert_eq!(
            decode(&[0x88, 0x0a]).map(|d| d.0),
            Ok(MmioAccess::Store {
                src: Source::Reg(reg(1, 1)),
                width: AccessWidth::Byte
            })
        );
        // mov [rdx], r10w
        assert_eq!(
            decode(&[0x66, 0x44, 0x89, 0x12]).map(|d| d.0),
            Ok(MmioAccess::Store {
                src: Source::Reg(reg(10, 2)),
                width: AccessWidth::Half
            })
        );
        // mov dword [rdx], 0x12345678
        assert_eq!(
            decode(&[0xc7, 0x02, 0x78, 0x56, 0x34, 0x12]),
            Ok((
                MmioAccess::Store {
                    src: Source::Imm(0x1234_5678),
                    width: AccessWidth::Word
                },
                6
            ))
        );
        // mov qword [rdx], -1 (imm32 sign-extended)
        assert_eq!(
            decode(&[0x48, 0xc7, 0x02, 0xff, 0xff, 0xff, 0xff]).map(|d| d.0),
            Ok(MmioAccess::Store {
                src: Source::Imm(u64::MAX),
                width: AccessWidth::Double
            })
        );
        // mov byte [rdx], 0x80
        assert_eq!(
            decode(&[0xc6, 0x02, 0x80]).map(|d| d.0),
            Ok(MmioAccess::Store {
                src: Source::Imm(0x80),
                width: AccessWidth::Byte
            })
        );
        // mov word [rdx], 0xbeef
        assert_eq!(
            decode(&[0x66, 0xc7, 0x02, 0xef, 0xbe]).map(|d| d.0),
            Ok(MmioAccess::Store {
                src: Source::Imm(0xbeef),
                width: AccessWidth::Half
            })
        );
    }

    #[test]
    fn everything_else_is_refused() {
        // add [rdx], eax (read-modify-write)
        assert_eq!(decode(&[0x01, 0x02]), Err(Unsupported::Form(Mnemonic::Add)));
        // rep movsb
        assert!(matches!(decode(&[0xf3, 0xa4]), Err(Unsupported::Form(_))));
        // stosd
        assert!(matches!(decode(&[0xab]), Err(Unsupported::Form(_))));
        // xchg [rdx], eax
        assert!(matches!(decode(&[0x87, 0x02]), Err(Unsupported::Form(_))));
        // movdqa xmm0, [rdx]
        assert!(matches!(
            decode(&[0x66, 0x0f, 0x6f, 0x02]),
            Err(Unsupported::Form(_))
        ));
        // mov eax, ebx (no memory operand)
        assert!(matches!(decode(&[0x89, 0xd8]), Err(Unsupported::Form(_))));
        // mov [rdx], es (segment register)
        assert!(matches!(decode(&[0x8c, 0x02]), Err(Unsupported::Form(_))));
        // Cut short, and garbage.
        assert_eq!(decode(&[0x8b]), Err(Unsupported::Invalid));
        assert_eq!(decode(&[]), Err(Unsupported::Invalid));
        assert_eq!(
            decode(&[0x0f, 0x0b, 0x00]).map(|d| d.1),
            Err(Unsupported::Form(Mnemonic::Ud2))
        );
    }

    #[test]
    fn register_numbers_follow_the_encoding() {
        let g = |r| gpr(r).map(|g| (g.index, g.size, g.high_byte));
        assert_eq!(g(Register::RAX), Some((0, 8, false)));
        assert_eq!(g(Register::RSP), Some((4, 8, false)));
        assert_eq!(g(Register::R15), Some((15, 8, false)));
        assert_eq!(g(Register::EDI), Some((7, 4, false)));
        assert_eq!(g(Register::R8D), Some((8, 4, false)));
        assert_eq!(g(Register::R13W), Some((13, 2, false)));
        assert_eq!(g(Register::BL), Some((3, 1, false)));
        assert_eq!(g(Register::BH), Some((3, 1, true)));
        assert_eq!(g(Register::SPL), Some((4, 1, false)));
        assert_eq!(g(Register::DIL), Some((7, 1, false)));
        assert_eq!(g(Register::R8L), Some((8, 1, false)));
        assert_eq!(g(Register::R15L), Some((15, 1, false)));
        assert_eq!(g(Register::ES), None);
        assert_eq!(g(Register::XMM0), None);
        assert_eq!(g(Register::RIP), None);
    }

    #[test]
    fn load_results_merge_like_the_cpu() {
        let old = 0x1122_3344_5566_7788;
        let al = reg(0, 1);
        let ah = Gpr {
            index: 0,
            size: 1,
            high_byte: true,
        };
        assert_eq!(
            load_result(old, al, AccessWidth::Byte, false, 0x1ab),
            0x1122_3344_5566_77ab
        );
        assert_eq!(
            load_result(old, ah, AccessWidth::Byte, false, 0xab),
            0x1122_3344_5566_ab88
        );
        assert_eq!(
            load_result(old, reg(0, 2), AccessWidth::Half, false, 0xbeef),
            0x1122_3344_5566_beef
        );
        assert_eq!(
            load_result(old, reg(0, 4), AccessWidth::Word, false, 0xdead_beef),
            0xdead_beef
        );
        assert_eq!(
            load_result(old, reg(0, 8), AccessWidth::Double, false, 7),
            7
        );
        // movzx eax, byte / movsx eax, byte / movsx rax, word.
        assert_eq!(
            load_result(old, reg(0, 4), AccessWidth::Byte, false, 0xf0),
            0xf0
        );
        assert_eq!(
            load_result(old, reg(0, 4), AccessWidth::Byte, true, 0xf0),
            0xffff_fff0
        );
        assert_eq!(
            load_result(old, reg(0, 8), AccessWidth::Half, true, 0x8000),
            0xffff_ffff_ffff_8000
        );
        assert_eq!(
            load_result(old, reg(0, 2), AccessWidth::Byte, true, 0x80),
            0x1122_3344_5566_ff80
        );
    }

    #[test]
    fn store_values_take_the_named_bytes() {
        let v = 0x1122_3344_5566_7788;
        let ah = Gpr {
            index: 0,
            size: 1,
            high_byte: true,
        };
        assert_eq!(store_value(v, ah, AccessWidth::Byte), 0x77);
        assert_eq!(store_value(v, reg(0, 2), AccessWidth::Half), 0x7788);
        assert_eq!(store_value(v, reg(0, 8), AccessWidth::Double), v);
    }
}
