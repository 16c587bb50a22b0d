//! VMX control values adjusted against the capability MSRs: every control
//! field has bits the CPU forces to 1 (allowed-0 settings, low half of
//! IA32_VMX_*_CTLS) and bits it cannot set (allowed-1 settings, high
//! half). Bochs and real CPUs differ, so nothing is hard-coded (SDM A.3-A.5).

/// A control field could not take every bit we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    /// Which field.
    pub field: &'static str,
    /// The bits we need that the CPU cannot set.
    pub bits: u32,
}

/// `wanted` plus the bits the CPU forces on, or which wanted bits it
/// cannot set. `capability` is the value of the IA32_VMX_*_CTLS MSR.
pub fn adjust(field: &'static str, wanted: u32, capability: u64) -> Result<u32, Missing> {
    let must_be_one = capability as u32;
    let may_be_one = (capability >> 32) as u32;
    let missing = wanted & !may_be_one;
    if missing != 0 {
        return Err(Missing {
            field,
            bits: missing,
        });
    }
    Ok((wanted | must_be_one) & may_be_one)
}

/// A CR0 or CR4 value made valid for VMX operation: bits set in FIXED0
/// must be 1, bits clear in FIXED1 must be 0 (SDM A.7, A.8).
pub const fn fix_cr(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_bits_are_added_and_impossible_bits_reported() {
        // Bits 1, 4-6 must be 1 (a typical pin-based allowed-0 value); bits
        // 0-7 may be 1.
        let cap = 0xff_u64 << 32 | 0x16;
        assert_eq!(adjust("pin", 0b1001, cap), Ok(0b1001 | 0x16));
        assert_eq!(
            adjust("pin", 1 << 9, cap),
            Err(Missing {
                field: "pin",
                bits: 1 << 9
            })
        );
        // A forced bit the CPU also lists as impossible cannot happen on a
        // real CPU, but the result never sets a bit outside allowed-1.
        assert_eq!(adjust("x", 0, 0x1_0000_0003), Ok(1));
    }

    #[test]
    fn control_registers_are_fixed() {
        // CR0 fixed0 = PE | NE | PG, fixed1 = all; CR4 fixed0 = VMXE.
        assert_eq!(fix_cr(0x11, 0x8000_0021, u64::MAX), 0x8000_0031);
        assert_eq!(fix_cr(0x20, 0x2000, 0x3f_ffff), 0x2020);
        assert_eq!(fix_cr(1 << 40, 0, 0xffff_ffff), 0);
    }
}
