//! GICv3 register front-ends of the virtual GIC: the distributor, the
//! redistributor frames of the VM's own vCPUs, and the SGI generation
//! register. They only translate register formats; every rule lives in
//! [`super::Vgic`].
//!
//! Defined outcomes for odd accesses: reserved and unimplemented offsets
//! read as zero and ignore writes (as the architecture has it for reserved
//! locations); an access width a register does not support (e.g. a byte
//! read of GICD_TYPER, a 64-bit access to a 32-bit register) is refused, and
//! the guest gets its VM's unhandled-access outcome (by default an abort).

use super::{Vgic, PRIVATE_INTIDS};
use crate::devices::{AccessError, Accessor, MmioDevice, SysRegDevice};
use crate::exit::AccessWidth;

/// Size of the distributor window.
pub const GICD_SIZE: u64 = 0x1_0000;
/// Size of one vCPU's redistributor (RD_base + SGI_base frames).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// Offset of the SGI_base frame in a redistributor.
const SGI_BASE: u64 = 0x1_0000;

/// Distributor and redistributor register offsets (GICv3 spec, 12.9/12.10).
mod reg {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const WAKER: u64 = 0x0014;
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const IPRIORITYR_END: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const ICFGR_END: u64 = 0x0d00;
    pub const IROUTER: u64 = 0x6000;
    pub const IROUTER_END: u64 = 0x8000;
    pub const PIDR2: u64 = 0xffe8;
    // Redistributor RD_base frame.
    pub const IIDR_RD: u64 = 0x0004;
    pub const TYPER_RD: u64 = 0x0008;
    pub const TYPER_RD_HI: u64 = 0x000c;
    // Redistributor SGI_base frame.
    pub const IPRIORITYR_PRIVATE_END: u64 = 0x0420;
    pub const ICFGR1: u64 = 0x0c04;
}

/// GICD_CTLR (single security state view, as KVM presents it): EnableGrp1
/// bit 1, ARE bit 4 (RAO), DS bit 6 (RAO).
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
const CTLR_ARE_DS: u32 = 1 << 4 | 1 << 6;
/// GICD_TYPER.IDbits: 10 INTID bits (no LPIs).
const TYPER_IDBITS_10: u32 = 9 << 19;
/// IIDR: implementer 0x43b (Arm), the value a GICv3 model reports.
const IIDR: u32 = 0x0300_043b;
/// PIDR2.ArchRev = 3 (GICv3).
const PIDR2_GICV3: u32 = 0x3b;
/// GICR_TYPER.Last.
const GICR_TYPER_LAST: u64 = 1 << 4;
/// GICR_WAKER: ProcessorSleep, ChildrenAsleep.
const WAKER_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// SGIs are edge-triggered (GICR_ICFGR0, read-only).
const ICFGR0_SGIS_EDGE: u32 = 0xaaaa_aaaa;

/// Which set-or-clear bitmap register an offset names (the same offsets in
/// the GICv2 distributor, which shares these helpers).
#[derive(Clone, Copy)]
pub(super) enum BitReg {
    /// ISENABLER.
    SetEnable,
    /// ICENABLER.
    ClearEnable,
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER / ICACTIVER.
    Active,
}

pub(super) fn bit_register(offset: u64) -> Option<(BitReg, u32)> {
    let (kind, base) = match offset {
        reg::ISENABLER..reg::ICENABLER => (BitReg::SetEnable, reg::ISENABLER),
        reg::ICENABLER..reg::ISPENDR => (BitReg::ClearEnable, reg::ICENABLER),
        reg::ISPENDR..reg::ICPENDR => (BitReg::SetPending, reg::ISPENDR),
        reg::ICPENDR..reg::ISACTIVER => (BitReg::ClearPending, reg::ICPENDR),
        reg::ISACTIVER..reg::IPRIORITYR => (BitReg::Active, reg::ISACTIVER),
        _ => return None,
    };
    Some((kind, ((offset - base) / 4 * 32) as u32))
}

/// Reads a 32-INTID bitmap register for `vcpu` starting at `first`.
pub(super) fn read_bits(vgic: &Vgic, vcpu: usize, kind: BitReg, first: u32) -> u32 {
    let mut value = 0;
    for bit in 0..32 {
        let intid = first + bit;
        let on = match kind {
            BitReg::SetEnable | BitReg::ClearEnable => vgic.is_enabled(vcpu, intid),
            BitReg::SetPending | BitReg::ClearPending => vgic.is_pending(vcpu, intid),
            // Active state lives in the list registers; not reported.
            BitReg::Active => false,
        };
        if on && vgic.owns(intid) {
            value |= 1 << bit;
        }
    }
    value
}

/// Applies a write of `value` to a 32-INTID bitmap register.
pub(super) fn write_bits(vgic: &Vgic, vcpu: usize, kind: BitReg, first: u32, value: u32) {
    let mut bits = value;
    while bits != 0 {
        let intid = first + bits.trailing_zeros();
        bits &= bits - 1;
        match kind {
            BitReg::SetEnable => vgic.set_enabled(vcpu, intid, true),
            BitReg::ClearEnable => vgic.set_enabled(vcpu, intid, false),
            BitReg::SetPending => vgic.set_pending(vcpu, intid),
            BitReg::ClearPending => vgic.clear_pending(vcpu, intid),
            BitReg::Active => {}
        }
    }
}

/// Reads `width` bytes of priorities starting at INTID `first`.
pub(super) fn read_priorities(vgic: &Vgic, vcpu: usize, first: u32, width: AccessWidth) -> u64 {
    (0..width.bytes() as u32).fold(0, |acc, i| {
        acc | (vgic.priority(vcpu, first + i) as u64) << (8 * i)
    })
}

pub(super) fn write_priorities(
    vgic: &Vgic,
    vcpu: usize,
    first: u32,
    width: AccessWidth,
    value: u64,
) {
    for i in 0..width.bytes() as u32 {
        vgic.set_priority(vcpu, first + i, (value >> (8 * i)) as u8);
    }
}

/// A register that is word-sized only.
pub(super) fn word_only(width: AccessWidth) -> Result<(), AccessError> {
    if width == AccessWidth::Word {
        Ok(())
    } else {
        Err(AccessError::Invalid)
    }
}

/// A priority register: bytes or words.
pub(super) fn byte_or_word(width: AccessWidth) -> Result<(), AccessError> {
    match width {
        AccessWidth::Byte | AccessWidth::Word => Ok(()),
        _ => Err(AccessError::Invalid),
    }
}

/// The VM's distributor (GICD), affinity routing on, one security state.
pub struct Distributor {
    vgic: &'static Vgic,
    /// GICD_TYPER, fixed for the VM's life.
    typer: u32,
}

impl Distributor {
    /// The distributor of `vgic`.
    pub fn new(vgic: &'static Vgic) -> Self {
        let it_lines = vgic.nr_intids() / 32 - 1;
        let cpus = (vgic.nr_vcpus().saturating_sub(1) as u32).min(7);
        Self {
            vgic,
            typer: TYPER_IDBITS_10 | cpus << 5 | it_lines,
        }
    }

    fn read_irouter(&self, intid: u32) -> u64 {
        if intid < PRIVATE_INTIDS || !self.vgic.owns(intid) {
            return 0;
        }
        self.vgic.target_of(intid) as u64
    }

    fn write_irouter(&self, intid: u32, value: u64) {
        // IRM (bit 31, "any PE") picks vCPU 0; explicit affinity must name
        // one of the VM's vCPUs (aff0 = index, higher levels 0).
        let target = if value & 1 << 31 != 0 {
            Some(0)
        } else if value & 0xff_00ff_ff00 == 0 {
            Some((value & 0xff) as usize)
        } else {
            None
        };
        if let Some(vcpu) = target {
            self.vgic.set_target(intid, vcpu);
        }
    }
}

impl MmioDevice for Distributor {
    fn read(&self, from: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let vgic = self.vgic;
        let value = match offset {
            reg::TYPER if width == AccessWidth::Word => self.typer as u64,
            reg::TYPER => return Err(AccessError::Invalid),
            reg::CTLR => {
                word_only(width)?;
                let enable = if vgic.group1_enabled() {
                    CTLR_ENABLE_GRP1
                } else {
                    0
                };
                (CTLR_ARE_DS | enable) as u64
            }
            reg::IIDR => {
                word_only(width)?;
                IIDR as u64
            }
            reg::IGROUPR..reg::ISENABLER => {
                word_only(width)?;
                // Every interrupt is group 1 (RAO/WI) for the SPIs it owns.
                let first = ((offset - reg::IGROUPR) / 4 * 32) as u32;
                if first < PRIVATE_INTIDS {
                    0
                } else {
                    (0..32).fold(0u64, |acc, b| acc | (vgic.owns(first + b) as u64) << b)
                }
            }
            reg::ISENABLER..reg::IPRIORITYR => {
                word_only(width)?;
                match bit_register(offset) {
                    // With affinity routing the private INTIDs live in the
                    // redistributors: the distributor's first word is RAZ.
                    Some((kind, first)) if first >= PRIVATE_INTIDS => {
                        read_bits(vgic, from.vcpu, kind, first) as u64
                    }
                    _ => 0,
                }
            }
            reg::IPRIORITYR..reg::IPRIORITYR_END => {
                byte_or_word(width)?;
                let first = (offset - reg::IPRIORITYR) as u32;
                if first < PRIVATE_INTIDS {
                    0
                } else {
                    read_priorities(vgic, from.vcpu, first, width)
                }
            }
            reg::ICFGR..reg::ICFGR_END => {
                word_only(width)?;
                let first = ((offset - reg::ICFGR) / 4 * 16) as u32;
                (0..16).fold(0u64, |acc, i| {
                    acc | ((first + i >= PRIVATE_INTIDS && vgic.is_edge(first + i)) as u64)
                        << (2 * i + 1)
                })
            }
            reg::IROUTER..reg::IROUTER_END => {
                let intid = ((offset - reg::IROUTER) / 8) as u32;
                match (width, offset % 8) {
                    (AccessWidth::Double, 0) | (AccessWidth::Word, 0) => self.read_irouter(intid),
                    (AccessWidth::Word, 4) => 0,
                    _ => return Err(AccessError::Invalid),
                }
            }
            reg::PIDR2 => {
                word_only(width)?;
                PIDR2_GICV3 as u64
            }
            _ => 0,
        };
        Ok(value)
    }

    fn write(
        &self,
        from: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        let vgic = self.vgic;
        match offset {
            reg::CTLR => {
                word_only(width)?;
                vgic.set_group1_enabled(value as u32 & CTLR_ENABLE_GRP1 != 0);
            }
            reg::ISENABLER..reg::IPRIORITYR => {
                word_only(width)?;
                if let Some((kind, first)) = bit_register(offset) {
                    if first >= PRIVATE_INTIDS {
                        write_bits(vgic, from.vcpu, kind, first, value as u32);
                    }
                }
            }
            reg::IPRIORITYR..reg::IPRIORITYR_END => {
                byte_or_word(width)?;
                let first = (offset - reg::IPRIORITYR) as u32;
                if first >= PRIVATE_INTIDS {
                    write_priorities(vgic, from.vcpu, first, width, value);
                }
            }
            reg::ICFGR..reg::ICFGR_END => {
                word_only(width)?;
                let first = ((offset - reg::ICFGR) / 4 * 16) as u32;
                for i in 0..16 {
                    if first + i >= PRIVATE_INTIDS && vgic.owns(first + i) {
                        vgic.set_edge(first + i, value & 1 << (2 * i + 1) != 0);
                    }
                }
            }
            reg::IROUTER..reg::IROUTER_END => {
                let intid = ((offset - reg::IROUTER) / 8) as u32;
                match (width, offset % 8) {
                    (AccessWidth::Double, 0) | (AccessWidth::Word, 0) => {
                        self.write_irouter(intid, value)
                    }
                    (AccessWidth::Word, 4) => {}
                    _ => return Err(AccessError::Invalid),
                }
            }
            // Read-only, group (RAO/WI), reserved: ignored.
            _ => match width {
                AccessWidth::Word | AccessWidth::Byte => {}
                _ => return Err(AccessError::Invalid),
            },
        }
        Ok(())
    }
}

/// The redistributors of the VM's vCPUs, one [`GICR_FRAME_SIZE`] frame each,
/// contiguous: any vCPU may read any of them (Linux scans them to find its
/// own), a write acts on the frame's vCPU.
pub struct Redistributors {
    vgic: &'static Vgic,
}

impl Redistributors {
    /// The redistributors of `vgic`.
    pub fn new(vgic: &'static Vgic) -> Self {
        Self { vgic }
    }

    /// Size of the window: one frame per vCPU.
    pub fn window_size(vgic: &Vgic) -> u64 {
        vgic.nr_vcpus() as u64 * GICR_FRAME_SIZE
    }

    fn typer(&self, vcpu: usize) -> u64 {
        let last = if vcpu + 1 == self.vgic.nr_vcpus() {
            GICR_TYPER_LAST
        } else {
            0
        };
        (vcpu as u64) << 32 | (vcpu as u64) << 8 | last
    }
}

impl MmioDevice for Redistributors {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let vgic = self.vgic;
        let vcpu = (offset / GICR_FRAME_SIZE) as usize;
        if vcpu >= vgic.nr_vcpus() {
            return Ok(0);
        }
        let off = offset % GICR_FRAME_SIZE;
        let value = if off < SGI_BASE {
            match (off, width) {
                (reg::TYPER_RD, AccessWidth::Double) => self.typer(vcpu),
                (reg::TYPER_RD, AccessWidth::Word) => self.typer(vcpu) & 0xffff_ffff,
                (reg::TYPER_RD_HI, AccessWidth::Word) => self.typer(vcpu) >> 32,
                (reg::IIDR_RD, AccessWidth::Word) => IIDR as u64,
                (reg::WAKER, AccessWidth::Word) => {
                    if vgic.is_asleep(vcpu) {
                        (WAKER_SLEEP | WAKER_CHILDREN_ASLEEP) as u64
                    } else {
                        0
                    }
                }
                (reg::PIDR2, AccessWidth::Word) => PIDR2_GICV3 as u64,
                (_, AccessWidth::Word) => 0,
                _ => return Err(AccessError::Invalid),
            }
        } else {
            let off = off - SGI_BASE;
            match off {
                reg::IGROUPR => {
                    word_only(width)?;
                    u32::MAX as u64
                }
                reg::ISENABLER..reg::IPRIORITYR => {
                    word_only(width)?;
                    match bit_register(off) {
                        Some((kind, 0)) => read_bits(vgic, vcpu, kind, 0) as u64,
                        _ => 0,
                    }
                }
                reg::IPRIORITYR..reg::IPRIORITYR_PRIVATE_END => {
                    byte_or_word(width)?;
                    read_priorities(vgic, vcpu, (off - reg::IPRIORITYR) as u32, width)
                }
                reg::ICFGR => {
                    word_only(width)?;
                    ICFGR0_SGIS_EDGE as u64
                }
                reg::ICFGR1 => {
                    word_only(width)?;
                    vgic.ppi_config(vcpu) as u64
                }
                _ => {
                    word_only(width)?;
                    0
                }
            }
        };
        Ok(value)
    }

    fn write(
        &self,
        _: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        let vgic = self.vgic;
        let vcpu = (offset / GICR_FRAME_SIZE) as usize;
        if vcpu >= vgic.nr_vcpus() {
            return Ok(());
        }
        let off = offset % GICR_FRAME_SIZE;
        if off < SGI_BASE {
            word_only(width)?;
            if off == reg::WAKER {
                vgic.set_asleep(vcpu, value as u32 & WAKER_SLEEP != 0);
            }
            return Ok(());
        }
        let off = off - SGI_BASE;
        match off {
            reg::ISENABLER..reg::IPRIORITYR => {
                word_only(width)?;
                if let Some((kind, 0)) = bit_register(off) {
                    write_bits(vgic, vcpu, kind, 0, value as u32);
                }
            }
            reg::IPRIORITYR..reg::IPRIORITYR_PRIVATE_END => {
                byte_or_word(width)?;
                write_priorities(vgic, vcpu, (off - reg::IPRIORITYR) as u32, width, value);
            }
            reg::ICFGR1 => {
                word_only(width)?;
                vgic.set_ppi_config(vcpu, value as u32);
            }
            _ => word_only(width)?,
        }
        Ok(())
    }
}

/// Applies a write to ICC_SGI1R_EL1 from `from`: SGI `INTID` to the listed
/// vCPUs of the same VM (IRM: every other vCPU). Affinities beyond the
/// VM's vCPUs (aff1..aff3 non-zero, list bits past the last vCPU) name
/// nobody: a VM can never signal a CPU it does not own.
pub fn send_sgi1r(vgic: &Vgic, from: usize, value: u64) {
    let intid = (value >> 24 & 0xf) as u32;
    let irm = value & 1 << 40 != 0;
    let n = vgic.nr_vcpus();
    if irm {
        for v in (0..n).filter(|&v| v != from) {
            vgic.set_pending(v, intid);
        }
        return;
    }
    let aff1 = value >> 16 & 0xff;
    let aff2 = value >> 32 & 0xff;
    let aff3 = value >> 48 & 0xff;
    let range_selector = value >> 44 & 0xf;
    if aff1 | aff2 | aff3 | range_selector != 0 {
        return;
    }
    let mut list = value & 0xffff;
    while list != 0 {
        let v = list.trailing_zeros() as usize;
        list &= list - 1;
        if v < n {
            vgic.set_pending(v, intid);
        }
    }
}

/// The trapped SGI generation registers (ICC_SGI1R_EL1, and ICC_SGI0R_EL1 /
/// ICC_ASGI1R_EL1 which name groups a VM does not have: ignored).
/// Write-only: reads are refused.
pub struct SgiRegisters {
    vgic: &'static Vgic,
    sgi1r: u32,
}

impl SgiRegisters {
    /// The SGI registers of `vgic`; `sgi1r` is the arch encoding of
    /// ICC_SGI1R_EL1 on the system-register bus.
    pub fn new(vgic: &'static Vgic, sgi1r: u32) -> Self {
        Self { vgic, sgi1r }
    }
}

impl SysRegDevice for SgiRegisters {
    fn read(&self, _: Accessor, _: u32) -> Result<u64, AccessError> {
        Err(AccessError::Invalid)
    }
    fn write(&self, from: Accessor, sysreg: u32, value: u64) -> Result<(), AccessError> {
        if sysreg == self.sgi1r {
            send_sgi1r(self.vgic, from.vcpu, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::vgic;
    use super::*;
    use alloc::boxed::Box;

    const V0: Accessor = Accessor { vcpu: 0 };
    const W: AccessWidth = AccessWidth::Word;

    fn dist() -> (&'static Distributor, &'static Vgic) {
        let (v, _) = vgic();
        (Box::leak(Box::new(Distributor::new(v))), v)
    }

    #[test]
    fn typer_ctlr_and_ids_describe_the_vm() {
        let (d, _) = dist();
        // 64 INTIDs -> ITLinesNumber 1; 2 vCPUs -> CPUNumber 1; IDbits 9.
        assert_eq!(d.read(V0, reg::TYPER, W), Ok(9 << 19 | 1 << 5 | 1));
        assert_eq!(d.read(V0, reg::CTLR, W), Ok(0x50));
        d.write(V0, reg::CTLR, W, 0x12).unwrap();
        assert_eq!(d.read(V0, reg::CTLR, W), Ok(0x52));
        assert_eq!(d.read(V0, reg::PIDR2, W), Ok(0x3b));
    }

    #[test]
    fn odd_widths_are_refused_and_reserved_offsets_are_raz_wi() {
        let (d, _) = dist();
        assert_eq!(
            d.read(V0, reg::TYPER, AccessWidth::Byte),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            d.read(V0, reg::ISENABLER + 4, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            d.write(V0, reg::CTLR, AccessWidth::Half, 2),
            Err(AccessError::Invalid)
        );
        assert_eq!(d.read(V0, 0x9000, W), Ok(0));
        assert_eq!(d.write(V0, 0x9000, W, 7), Ok(()));
    }

    #[test]
    fn only_owned_spis_can_be_enabled_prioritised_and_routed() {
        let (d, v) = dist();
        // Word 1 covers INTIDs 32..63: the VM owns 33 and 40 only.
        d.write(V0, reg::ISENABLER + 4, W, u32::MAX as u64).unwrap();
        assert_eq!(d.read(V0, reg::ISENABLER + 4, W), Ok(1 << 1 | 1 << 8));
        assert!(v.is_enabled(0, 40) && !v.is_enabled(0, 41));
        d.write(V0, reg::ICENABLER + 4, W, 1 << 8).unwrap();
        assert!(!v.is_enabled(0, 40));
        d.write(V0, reg::IPRIORITYR + 40, AccessWidth::Byte, 0xa0)
            .unwrap();
        d.write(V0, reg::IPRIORITYR + 44, W, 0xa0a0_a0a0).unwrap();
        assert_eq!(d.read(V0, reg::IPRIORITYR + 40, W), Ok(0xa0));
        assert_eq!(d.read(V0, reg::IPRIORITYR + 44, W), Ok(0));
        // IROUTER: own vCPU 1 accepted, a vCPU beyond the VM or another
        // affinity level ignored.
        let r40 = reg::IROUTER + 8 * 40;
        d.write(V0, r40, AccessWidth::Double, 1).unwrap();
        assert_eq!(d.read(V0, r40, AccessWidth::Double), Ok(1));
        d.write(V0, r40, AccessWidth::Double, 7).unwrap();
        d.write(V0, r40, AccessWidth::Double, 1 << 8).unwrap();
        assert_eq!(v.target_of(40), 1);
        let r41 = reg::IROUTER + 8 * 41;
        d.write(V0, r41, AccessWidth::Double, 1).unwrap();
        assert_eq!(d.read(V0, r41, AccessWidth::Double), Ok(0));
    }

    #[test]
    fn private_interrupts_are_raz_in_the_distributor() {
        let (d, v) = dist();
        d.write(V0, reg::ISENABLER, W, u32::MAX as u64).unwrap();
        d.write(V0, reg::IPRIORITYR, W, u32::MAX as u64).unwrap();
        assert!(!v.is_enabled(0, 27) && !v.is_enabled(0, 1));
        assert_eq!(d.read(V0, reg::ISENABLER, W), Ok(0));
    }

    #[test]
    fn redistributor_frames_are_the_vms_vcpus() {
        let (_, v) = dist();
        let r = Redistributors::new(v);
        assert_eq!(Redistributors::window_size(v), 2 * GICR_FRAME_SIZE);
        let t0 = r.read(V0, reg::TYPER_RD, AccessWidth::Double).unwrap();
        let t1 = r
            .read(V0, GICR_FRAME_SIZE + reg::TYPER_RD, AccessWidth::Double)
            .unwrap();
        assert_eq!((t0 >> 32, t0 & GICR_TYPER_LAST), (0, 0));
        assert_eq!((t1 >> 32, t1 & GICR_TYPER_LAST), (1, GICR_TYPER_LAST));
        // Wake vCPU 1's redistributor, enable its PPI 27 and SGI 3 (but not
        // PPI 25, which the VM does not own).
        let sgi1 = GICR_FRAME_SIZE + SGI_BASE;
        r.write(V0, GICR_FRAME_SIZE + reg::WAKER, W, 0).unwrap();
        assert_eq!(r.read(V0, GICR_FRAME_SIZE + reg::WAKER, W), Ok(0));
        r.write(V0, sgi1 + reg::ISENABLER, W, 1 << 27 | 1 << 25 | 1 << 3)
            .unwrap();
        assert_eq!(r.read(V0, sgi1 + reg::ISENABLER, W), Ok(1 << 27 | 1 << 3));
        assert!(v.is_enabled(1, 27) && !v.is_enabled(0, 27));
        r.write(V0, sgi1 + reg::IPRIORITYR + 27, AccessWidth::Byte, 0x80)
            .unwrap();
        assert_eq!(v.priority(1, 27), 0x80);
        assert_eq!(r.read(V0, sgi1 + reg::ICFGR, W), Ok(0xaaaa_aaaa));
        assert_eq!(
            r.read(V0, reg::TYPER_RD, AccessWidth::Byte),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn sgis_reach_only_the_vms_own_vcpus() {
        let (_, v) = dist();
        v.set_group1_enabled(true);
        for vcpu in 0..2 {
            v.set_enabled(vcpu, 5, true);
        }
        // Target list {1} at aff1 = 0: delivered to vCPU 1.
        send_sgi1r(v, 0, 5 << 24 | 0b10);
        assert!(v.is_pending(1, 5) && !v.is_pending(0, 5));
        v.clear_pending(1, 5);
        // Another cluster, or list bits past the VM's vCPUs: nobody.
        send_sgi1r(v, 0, 5 << 24 | 1 << 16 | 0b11);
        send_sgi1r(v, 0, 5 << 24 | 0b1100);
        assert!(!v.is_pending(0, 5) && !v.is_pending(1, 5));
        // IRM: every vCPU but the sender.
        send_sgi1r(v, 1, 5 << 24 | 1 << 40);
        assert!(v.is_pending(0, 5) && !v.is_pending(1, 5));
    }
}
