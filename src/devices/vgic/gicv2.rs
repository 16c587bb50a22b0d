//! GICv2 register front-end of the virtual GIC: the distributor (GICD) with
//! its banked per-vCPU registers for SGIs and PPIs, ITARGETSR and GICD_SGIR.
//! Like [`super::gicv3`] it only translates register formats; every rule
//! (ownership, enables, priorities, routing, pending sets) lives in
//! [`super::Vgic`]. The guest's CPU interface is not emulated: the physical
//! GICV frame is mapped at the guest's GICC address.
//!
//! Choices a guest can observe:
//! - One security state, every interrupt group 0 (GICD_IGROUPR RAZ/WI), as
//!   Linux's GICv2 driver uses it; GICD_CTLR.Enable is the core's
//!   distributor enable.
//! - ITARGETSR names at most the VM's own vCPUs (CPU interface *i* =
//!   vCPU *i*), and the core routes an SPI to exactly one vCPU: a write
//!   picks the lowest-numbered listed vCPU the VM has; a write listing none
//!   of them is ignored; a read shows the one target. SGI/PPI bytes read as
//!   the reading vCPU's own bit.
//! - GICD_SGIR reaches only the VM's vCPUs; the SGI's source CPU is not
//!   tracked (SPENDSGIR reads a pending SGI as coming from CPU 0, the
//!   virtual interface reports source 0).
//! - Reserved offsets read as zero and ignore writes; a width a register
//!   does not support is refused (the VM's unhandled-access outcome).

use super::gicv3::{
    bit_register, byte_or_word, read_bits, read_priorities, word_only, write_bits, write_priorities,
};
use super::{Vgic, PRIVATE_INTIDS, SGIS};
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;

/// Size of the distributor window.
pub const GICD_SIZE: u64 = 0x1000;
/// Size of the CPU interface window the guest sees (GICC, backed by GICV:
/// two 4 KiB pages, GICC_DIR in the second).
pub const GICC_SIZE: u64 = 0x2000;
/// Most CPU interfaces a GICv2 can name (8 target bits).
pub const MAX_VCPUS: usize = 8;

/// Distributor register offsets (GICv2 spec, 4.3).
mod reg {
    pub const CTLR: u64 = 0x000;
    pub const TYPER: u64 = 0x004;
    pub const IIDR: u64 = 0x008;
    pub const IGROUPR: u64 = 0x080;
    pub const ISENABLER: u64 = 0x100;
    #[cfg(test)]
    pub const ICENABLER: u64 = 0x180;
    pub const IPRIORITYR: u64 = 0x400;
    pub const IPRIORITYR_END: u64 = 0x800;
    pub const ITARGETSR: u64 = 0x800;
    pub const ITARGETSR_END: u64 = 0xc00;
    pub const ICFGR: u64 = 0xc00;
    pub const ICFGR_END: u64 = 0xd00;
    pub const SGIR: u64 = 0xf00;
    pub const CPENDSGIR: u64 = 0xf10;
    pub const SPENDSGIR: u64 = 0xf20;
    pub const SPENDSGIR_END: u64 = 0xf30;
    pub const PIDR2: u64 = 0xfe8;
}

/// GICD_CTLR.Enable (one security state).
const CTLR_ENABLE: u32 = 1;
/// IIDR: implementer 0x43b (Arm), product GIC-400 (0x02), revision 0.
const IIDR: u32 = 0x0200_143b;
/// ICPIDR2.ArchRev = 2 (GICv2).
const PIDR2_GICV2: u32 = 0x2b;
/// SGIs are edge-triggered (GICD_ICFGR0, read-only).
const ICFGR0_SGIS_EDGE: u32 = 0xaaaa_aaaa;

/// Where a GICD_SGIR write sends its SGI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SgiTargets {
    /// The CPUTargetList bits.
    List(u8),
    /// Every vCPU but the sender.
    Others,
    /// The sender only.
    SelfOnly,
}

/// Decodes GICD_SGIR: (SGI INTID, targets); the reserved filter 3 names
/// nobody.
fn decode_sgir(value: u32) -> Option<(u32, SgiTargets)> {
    let intid = value & 0xf;
    let targets = match value >> 24 & 3 {
        0 => SgiTargets::List((value >> 16) as u8),
        1 => SgiTargets::Others,
        2 => SgiTargets::SelfOnly,
        _ => return None,
    };
    Some((intid, targets))
}

/// Applies a GICD_SGIR write from vCPU `from`: target bits beyond the VM's
/// vCPUs name nobody, so a VM can never signal a CPU it does not own.
pub fn send_sgir(vgic: &Vgic, from: usize, value: u32) {
    let Some((intid, targets)) = decode_sgir(value) else {
        return;
    };
    let n = vgic.nr_vcpus().min(MAX_VCPUS);
    match targets {
        SgiTargets::List(list) => {
            for v in (0..n).filter(|&v| list & 1 << v != 0) {
                vgic.set_pending(v, intid);
            }
        }
        SgiTargets::Others => {
            for v in (0..n).filter(|&v| v != from) {
                vgic.set_pending(v, intid);
            }
        }
        SgiTargets::SelfOnly => vgic.set_pending(from, intid),
    }
}

/// The vCPU an ITARGETSR byte names: the lowest listed one the VM has.
pub fn target_from_bits(bits: u8, nr_vcpus: usize) -> Option<usize> {
    let mask = if nr_vcpus >= MAX_VCPUS {
        u8::MAX
    } else {
        (1u8 << nr_vcpus) - 1
    };
    let own = bits & mask;
    (own != 0).then(|| own.trailing_zeros() as usize)
}

/// The VM's GICv2 distributor.
pub struct Distributor {
    vgic: &'static Vgic,
    /// GICD_TYPER, fixed for the VM's life.
    typer: u32,
}

impl Distributor {
    /// The distributor of `vgic` (a GICv2 VM has at most [`MAX_VCPUS`]
    /// vCPUs; the config validator enforces it).
    pub fn new(vgic: &'static Vgic) -> Self {
        let it_lines = vgic.nr_intids() / 32 - 1;
        let cpus = (vgic.nr_vcpus().saturating_sub(1) as u32).min(7);
        Self {
            vgic,
            typer: cpus << 5 | it_lines,
        }
    }

    /// ITARGETSR byte of `intid` as `vcpu` reads it.
    fn read_target(&self, vcpu: usize, intid: u32) -> u8 {
        if !self.vgic.owns(intid) || vcpu >= MAX_VCPUS {
            0
        } else if intid < PRIVATE_INTIDS {
            1 << vcpu
        } else {
            let t = self.vgic.target_of(intid);
            if t < MAX_VCPUS {
                1 << t
            } else {
                0
            }
        }
    }

    fn write_target(&self, intid: u32, bits: u8) {
        if intid < PRIVATE_INTIDS {
            return;
        }
        if let Some(vcpu) = target_from_bits(bits, self.vgic.nr_vcpus()) {
            self.vgic.set_target(intid, vcpu);
        }
    }
}

impl MmioDevice for Distributor {
    fn read(&self, from: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let vgic = self.vgic;
        let vcpu = from.vcpu;
        let value = match offset {
            reg::CTLR => {
                word_only(width)?;
                vgic.group1_enabled() as u64 * CTLR_ENABLE as u64
            }
            reg::TYPER => {
                word_only(width)?;
                self.typer as u64
            }
            reg::IIDR => {
                word_only(width)?;
                IIDR as u64
            }
            reg::IGROUPR..reg::ISENABLER => {
                word_only(width)?;
                0
            }
            reg::ISENABLER..reg::IPRIORITYR => {
                word_only(width)?;
                // Word 0 is banked: the reading vCPU's SGIs and PPIs.
                bit_register(offset)
                    .map_or(0, |(kind, first)| read_bits(vgic, vcpu, kind, first) as u64)
            }
            reg::IPRIORITYR..reg::IPRIORITYR_END => {
                byte_or_word(width)?;
                read_priorities(vgic, vcpu, (offset - reg::IPRIORITYR) as u32, width)
            }
            reg::ITARGETSR..reg::ITARGETSR_END => {
                byte_or_word(width)?;
                let first = (offset - reg::ITARGETSR) as u32;
                (0..width.bytes() as u32).fold(0u64, |acc, i| {
                    acc | (self.read_target(vcpu, first + i) as u64) << (8 * i)
                })
            }
            reg::ICFGR..reg::ICFGR_END => {
                word_only(width)?;
                let first = ((offset - reg::ICFGR) / 4 * 16) as u32;
                match first {
                    0 => ICFGR0_SGIS_EDGE as u64,
                    16 => vgic.ppi_config(vcpu) as u64,
                    _ => (0..16).fold(0u64, |acc, i| {
                        acc | (vgic.is_edge(first + i) as u64) << (2 * i + 1)
                    }),
                }
            }
            reg::SGIR => return Err(AccessError::Invalid),
            reg::CPENDSGIR..reg::SPENDSGIR_END => {
                byte_or_word(width)?;
                let first = ((offset - reg::CPENDSGIR) % 0x10) as u32;
                (0..width.bytes() as u32)
                    .filter(|&i| first + i < SGIS && vgic.is_pending(vcpu, first + i))
                    .fold(0u64, |acc, i| acc | 1 << (8 * i))
            }
            reg::PIDR2 => {
                word_only(width)?;
                PIDR2_GICV2 as u64
            }
            _ => {
                byte_or_word(width)?;
                0
            }
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
        let vcpu = from.vcpu;
        match offset {
            reg::CTLR => {
                word_only(width)?;
                vgic.set_group1_enabled(value as u32 & CTLR_ENABLE != 0);
            }
            reg::ISENABLER..reg::IPRIORITYR => {
                word_only(width)?;
                if let Some((kind, first)) = bit_register(offset) {
                    write_bits(vgic, vcpu, kind, first, value as u32);
                }
            }
            reg::IPRIORITYR..reg::IPRIORITYR_END => {
                byte_or_word(width)?;
                write_priorities(vgic, vcpu, (offset - reg::IPRIORITYR) as u32, width, value);
            }
            reg::ITARGETSR..reg::ITARGETSR_END => {
                byte_or_word(width)?;
                let first = (offset - reg::ITARGETSR) as u32;
                for i in 0..width.bytes() as u32 {
                    self.write_target(first + i, (value >> (8 * i)) as u8);
                }
            }
            reg::ICFGR..reg::ICFGR_END => {
                word_only(width)?;
                let first = ((offset - reg::ICFGR) / 4 * 16) as u32;
                match first {
                    0 => {}
                    16 => vgic.set_ppi_config(vcpu, value as u32),
                    _ => {
                        for i in 0..16 {
                            if vgic.owns(first + i) {
                                vgic.set_edge(first + i, value & 1 << (2 * i + 1) != 0);
                            }
                        }
                    }
                }
            }
            reg::SGIR => {
                word_only(width)?;
                send_sgir(vgic, vcpu, value as u32);
            }
            reg::CPENDSGIR..reg::SPENDSGIR_END => {
                byte_or_word(width)?;
                let set = offset >= reg::SPENDSGIR;
                let first = ((offset - reg::CPENDSGIR) % 0x10) as u32;
                for i in 0..width.bytes() as u32 {
                    let sgi = first + i;
                    if sgi < SGIS && (value >> (8 * i)) as u8 != 0 {
                        if set {
                            vgic.set_pending(vcpu, sgi);
                        } else {
                            vgic.clear_pending(vcpu, sgi);
                        }
                    }
                }
            }
            // Read-only, group (RAZ/WI), reserved: ignored.
            _ => byte_or_word(width)?,
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
    const V1: Accessor = Accessor { vcpu: 1 };
    const W: AccessWidth = AccessWidth::Word;
    const B: AccessWidth = AccessWidth::Byte;

    fn dist() -> (&'static Distributor, &'static Vgic) {
        let (v, _) = vgic();
        (Box::leak(Box::new(Distributor::new(v))), v)
    }

    #[test]
    fn typer_ctlr_and_ids_describe_the_vm() {
        let (d, v) = dist();
        // 64 INTIDs -> ITLinesNumber 1; 2 vCPUs -> CPUNumber 1; no security
        // extensions.
        assert_eq!(d.read(V0, reg::TYPER, W), Ok(1 << 5 | 1));
        assert_eq!(d.read(V0, reg::CTLR, W), Ok(0));
        d.write(V0, reg::CTLR, W, 1).unwrap();
        assert!(v.group1_enabled());
        assert_eq!(d.read(V0, reg::CTLR, W), Ok(1));
        assert_eq!(d.read(V0, reg::PIDR2, W), Ok(0x2b));
        assert_eq!(d.read(V0, reg::IGROUPR + 4, W), Ok(0));
    }

    #[test]
    fn odd_widths_are_refused_and_reserved_offsets_are_raz_wi() {
        let (d, _) = dist();
        assert_eq!(d.read(V0, reg::TYPER, B), Err(AccessError::Invalid));
        assert_eq!(
            d.read(V0, reg::ISENABLER, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
        assert_eq!(d.read(V0, reg::SGIR, W), Err(AccessError::Invalid));
        assert_eq!(
            d.write(V0, reg::ITARGETSR, AccessWidth::Half, 1),
            Err(AccessError::Invalid)
        );
        assert_eq!(d.read(V0, 0xd80, W), Ok(0));
        assert_eq!(d.write(V0, 0xd80, W, 7), Ok(()));
    }

    #[test]
    fn sgi_and_ppi_registers_are_banked_per_vcpu() {
        let (d, v) = dist();
        // vCPU 1 enables SGI 3 and PPI 27 (and PPI 25, not the VM's).
        d.write(V1, reg::ISENABLER, W, 1 << 27 | 1 << 25 | 1 << 3)
            .unwrap();
        assert_eq!(d.read(V1, reg::ISENABLER, W), Ok(1 << 27 | 1 << 3));
        assert_eq!(d.read(V0, reg::ISENABLER, W), Ok(0));
        assert!(v.is_enabled(1, 27) && !v.is_enabled(0, 27));
        d.write(V1, reg::IPRIORITYR + 27, B, 0x80).unwrap();
        assert_eq!(v.priority(1, 27), 0x80);
        assert_eq!(v.priority(0, 27), 0);
        // Private ITARGETSR bytes read as the reader's own CPU interface.
        assert_eq!(d.read(V0, reg::ITARGETSR, W), Ok(0x0101_0101));
        assert_eq!(d.read(V1, reg::ITARGETSR + 24, B), Ok(0));
        assert_eq!(d.read(V1, reg::ITARGETSR + 27, B), Ok(2));
        assert_eq!(d.read(V0, reg::ICFGR, W), Ok(0xaaaa_aaaa));
        d.write(V1, reg::ICFGR + 4, W, 0x1234).unwrap();
        assert_eq!(d.read(V1, reg::ICFGR + 4, W), Ok(0x1234));
        assert_eq!(d.read(V0, reg::ICFGR + 4, W), Ok(0));
    }

    #[test]
    fn only_owned_spis_can_be_enabled_prioritised_configured_and_targeted() {
        let (d, v) = dist();
        d.write(V0, reg::ISENABLER + 4, W, u32::MAX as u64).unwrap();
        assert_eq!(d.read(V0, reg::ISENABLER + 4, W), Ok(1 << 1 | 1 << 8));
        d.write(V0, reg::ICENABLER + 4, W, 1 << 8).unwrap();
        assert!(!v.is_enabled(0, 40) && v.is_enabled(0, 33));
        d.write(V0, reg::IPRIORITYR + 40, W, 0xa0a0_a0a0).unwrap();
        assert_eq!(d.read(V0, reg::IPRIORITYR + 40, W), Ok(0xa0));
        // ICFGR2 covers 32..47: edge for 33 and 40.
        d.write(V0, reg::ICFGR + 8, W, 0xaaaa_aaaa).unwrap();
        assert_eq!(d.read(V0, reg::ICFGR + 8, W), Ok(2 << 2 | 2 << 16));
        // ITARGETSR: vCPU 1 accepted; several bits pick the lowest; bits
        // beyond the VM's vCPUs alone are ignored; unowned reads 0.
        d.write(V0, reg::ITARGETSR + 40, B, 0b10).unwrap();
        assert_eq!(v.target_of(40), 1);
        assert_eq!(d.read(V0, reg::ITARGETSR + 40, B), Ok(0b10));
        d.write(V0, reg::ITARGETSR + 40, B, 0b1100).unwrap();
        assert_eq!(v.target_of(40), 1);
        d.write(V0, reg::ITARGETSR + 40, B, 0b1111).unwrap();
        assert_eq!(v.target_of(40), 0);
        d.write(V0, reg::ITARGETSR + 40, W, 0x02).unwrap();
        assert_eq!(d.read(V0, reg::ITARGETSR + 40, W), Ok(0x02));
        d.write(V0, reg::ITARGETSR + 41, B, 1).unwrap();
        assert_eq!(d.read(V0, reg::ITARGETSR + 41, B), Ok(0));
    }

    #[test]
    fn target_bits_name_only_the_vms_vcpus() {
        assert_eq!(target_from_bits(0b0100, 4), Some(2));
        assert_eq!(target_from_bits(0b0110, 4), Some(1));
        assert_eq!(target_from_bits(0b1_0000, 4), None);
        assert_eq!(target_from_bits(0, 4), None);
        assert_eq!(target_from_bits(0x80, 8), Some(7));
    }

    #[test]
    fn sgir_reaches_only_the_vms_own_vcpus() {
        let (d, v) = dist();
        v.set_group1_enabled(true);
        for vcpu in 0..2 {
            v.set_enabled(vcpu, 5, true);
        }
        // Target list {1}.
        d.write(V0, reg::SGIR, W, 0b10 << 16 | 5).unwrap();
        assert!(v.is_pending(1, 5) && !v.is_pending(0, 5));
        assert_eq!(d.read(V1, reg::SPENDSGIR + 5, B), Ok(1));
        d.write(V1, reg::CPENDSGIR + 5, B, 1).unwrap();
        assert!(!v.is_pending(1, 5));
        // List bits past the VM's vCPUs, or the reserved filter: nobody.
        d.write(V0, reg::SGIR, W, 0b1100 << 16 | 5).unwrap();
        d.write(V0, reg::SGIR, W, 3 << 24 | 0b11 << 16 | 5).unwrap();
        assert!(!v.is_pending(0, 5) && !v.is_pending(1, 5));
        // All but self, then self only.
        d.write(V1, reg::SGIR, W, 1 << 24 | 5).unwrap();
        assert!(v.is_pending(0, 5) && !v.is_pending(1, 5));
        v.clear_pending(0, 5);
        d.write(V1, reg::SGIR, W, 2 << 24 | 5).unwrap();
        assert!(v.is_pending(1, 5) && !v.is_pending(0, 5));
        // SPENDSGIR sets pending for the writer.
        d.write(V0, reg::SPENDSGIR + 4, W, 0x0100).unwrap();
        assert!(v.is_pending(0, 5));
    }
}
