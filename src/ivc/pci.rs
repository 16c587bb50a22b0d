//! The `ivc-pci` emulated device: a virtual PCI host bridge (ECAM, bus 0)
//! whose device `k` is the `k`-th static channel of its VM, so a Linux
//! guest binds the stock `uio_pci_generic` driver to a channel and waits
//! for the doorbell interrupt in `read()` on `/dev/uioN` (docs/IVC.md,
//! "Linux userspace").
//!
//! Each function is a type-0 header with two 64-bit memory BARs at the
//! member's own addresses: BAR0 the channel's doorbell page (the same
//! device as without PCI) and BAR2 the shared memory (its size rounded up
//! to a power of two). The BARs cannot move: they read back what is
//! written, so sizing works, but the device stays at its configured
//! address (Linux is told `linux,pci-probe-only`). INTA is the member's
//! doorbell interrupt; the status register's interrupt bit shows whether
//! anything is pending for the member, and the command register's INTx
//! disable bit holds rings back (`uio_pci_generic` sets it in its handler;
//! userspace clears it once it acknowledged PENDING).

use super::{ChannelState, Notify};
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering};
use tessera_config::{
    ivc_pci_shm_bar_size, Channel, ChannelMember, DOORBELL_SIZE, IVC_PCI_DEVICE, IVC_PCI_VENDOR,
};

/// Type-0 configuration header registers (byte offsets).
mod reg {
    /// Vendor id (15:0), device id (31:16).
    pub const ID: u64 = 0x00;
    /// Command (15:0), status (31:16).
    pub const COMMAND: u64 = 0x04;
    /// Revision (7:0), class code (31:8).
    pub const CLASS_REV: u64 = 0x08;
    /// BAR0 (the doorbell, low half).
    pub const BAR0: u64 = 0x10;
    /// One past BAR3 (the shared memory's high half).
    pub const BAR_END: u64 = 0x20;
    /// Subsystem vendor (15:0), subsystem id (31:16).
    pub const SUBSYSTEM: u64 = 0x2c;
    /// Interrupt line (7:0), interrupt pin (15:8).
    pub const INTERRUPT: u64 = 0x3c;
}

/// Command register: memory space, bus master, parity and SERR# enables,
/// and INTx disable are writable; the rest reads as zero.
const COMMAND_WRITABLE: u16 = 1 << 1 | 1 << 2 | 1 << 6 | 1 << 8 | COMMAND_INTX_DISABLE;
/// Command register: INTx disable.
const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: INTx is asserted (something is pending).
const STATUS_INTERRUPT: u32 = 1 << 3;
/// Revision 1, class 05h (memory controller), subclass 80h (other).
const CLASS_REV: u32 = 0x0580_0001;
/// Interrupt pin: INTA.
const PIN_INTA: u32 = 1;
/// BAR flags: 64-bit memory; and prefetchable.
const BAR_MEM64: u32 = 0b0100;
const BAR_PREFETCH: u32 = 0b1000;
/// Configuration space of one function in ECAM (4 KiB), and functions per
/// device.
const FUNCTION_SHIFT: u64 = 12;
const FUNCTIONS_PER_DEVICE: u64 = 8;

/// One channel as a PCI function.
pub struct Function {
    state: &'static ChannelState,
    /// The member this VM is.
    index: usize,
    channel_id: u16,
    /// The member (its VM id, doorbell interrupt = INTA, spare line).
    member: ChannelMember,
    notify: &'static dyn Notify,
    /// BAR0-BAR3 as configured: doorbell low/high, memory low/high.
    home: [u32; 4],
    /// What the BARs read back, with their size masks applied.
    bars: [AtomicU32; 4],
    /// Address bits each BAR register keeps (the rest are its size).
    masks: [u32; 4],
    command: AtomicU16,
    line: AtomicU8,
}

impl Function {
    /// Member `index` of `channel` (its run-time `state`) as a function;
    /// `notify` raises its interrupt when INTx is re-enabled with
    /// something pending.
    pub fn new(
        channel: &'static Channel,
        state: &'static ChannelState,
        index: usize,
        notify: &'static dyn Notify,
    ) -> Option<Self> {
        let m = channel.members.get(index)?;
        let bell_mask = !(DOORBELL_SIZE - 1);
        let shm_mask = !(ivc_pci_shm_bar_size(channel.size) - 1);
        let halves = |v: u64| [v as u32, (v >> 32) as u32];
        let [b0, b1] = halves(m.doorbell_gpa);
        let [b2, b3] = halves(m.gpa);
        let [m0, m1] = halves(bell_mask);
        let [m2, m3] = halves(shm_mask);
        let home = [b0, b1, b2, b3];
        Some(Self {
            state,
            index,
            channel_id: channel.id as u16,
            member: *m,
            notify,
            home,
            bars: home.map(AtomicU32::new),
            masks: [m0 & !0xf, m1, m2 & !0xf, m3],
            command: AtomicU16::new(0),
            line: AtomicU8::new(0),
        })
    }

    /// The aligned 32-bit register at `at`.
    fn dword(&self, at: u64) -> u32 {
        match at {
            reg::ID => u32::from(IVC_PCI_VENDOR) | u32::from(IVC_PCI_DEVICE) << 16,
            reg::COMMAND => {
                let status = if self.state.pending_for(self.index) != 0 {
                    STATUS_INTERRUPT
                } else {
                    0
                };
                u32::from(self.command.load(Ordering::Acquire)) | status << 16
            }
            reg::CLASS_REV => CLASS_REV,
            reg::BAR0..reg::BAR_END => {
                let i = ((at - reg::BAR0) / 4) as usize;
                let flags = [BAR_MEM64, 0, BAR_MEM64 | BAR_PREFETCH, 0];
                self.bars[i].load(Ordering::Relaxed) | flags[i]
            }
            reg::SUBSYSTEM => u32::from(IVC_PCI_VENDOR) | u32::from(self.channel_id) << 16,
            reg::INTERRUPT => u32::from(self.line.load(Ordering::Relaxed)) | PIN_INTA << 8,
            _ => 0,
        }
    }

    /// A write of `value` to the bytes `lanes` (a mask) of the aligned
    /// register at `at`.
    fn write_dword(&self, at: u64, lanes: u32, value: u32) {
        let merge = |old: u32| (old & !lanes) | (value & lanes);
        match at {
            reg::COMMAND if lanes & 0xffff != 0 => {
                // Status bits are read-only or write-1-to-clear errors this
                // device never sets: only the command half is written.
                let old = self.command.load(Ordering::Acquire);
                let new = merge(u32::from(old)) as u16 & COMMAND_WRITABLE;
                self.command.store(new, Ordering::Release);
                let disabled = new & COMMAND_INTX_DISABLE != 0;
                if disabled != (old & COMMAND_INTX_DISABLE != 0) {
                    self.set_intx_disabled(disabled);
                }
            }
            reg::BAR0..reg::BAR_END => {
                let i = ((at - reg::BAR0) / 4) as usize;
                let bar = &self.bars[i];
                bar.store(
                    merge(bar.load(Ordering::Relaxed)) & self.masks[i],
                    Ordering::Relaxed,
                );
            }
            reg::INTERRUPT if lanes & 0xff != 0 => self.line.store(value as u8, Ordering::Relaxed),
            _ => {}
        }
    }

    fn set_intx_disabled(&self, disabled: bool) {
        if self.state.set_held(self.index, disabled) {
            // Re-enabled with a ring pending: the line is high again.
            self.notify.ring(&self.member);
        }
    }

    fn reset(&self) {
        self.command.store(0, Ordering::Release);
        self.state.set_held(self.index, false);
        for (bar, home) in self.bars.iter().zip(self.home) {
            bar.store(home, Ordering::Relaxed);
        }
        self.line.store(0, Ordering::Relaxed);
    }
}

/// The bridge: ECAM of bus 0, device `k` = `functions[k]`, function 0.
pub struct PciHost {
    functions: Vec<Function>,
}

impl PciHost {
    /// A bridge presenting `functions` as devices 0, 1, ...
    pub fn new(functions: Vec<Function>) -> Self {
        Self { functions }
    }

    /// The function at ECAM `offset`, the register offset in it and the
    /// byte lane of the access; `Err` for an access ECAM does not allow
    /// (unaligned, 64-bit), `Ok(None)` for an absent function.
    fn decode(
        &self,
        offset: u64,
        width: AccessWidth,
    ) -> Result<(Option<&Function>, u64, u32), AccessError> {
        if width == AccessWidth::Double || !offset.is_multiple_of(width.bytes()) {
            return Err(AccessError::Invalid);
        }
        let devfn = offset >> FUNCTION_SHIFT;
        let at = offset & ((1 << FUNCTION_SHIFT) - 1);
        let function = if devfn.is_multiple_of(FUNCTIONS_PER_DEVICE) {
            usize::try_from(devfn / FUNCTIONS_PER_DEVICE)
                .ok()
                .and_then(|d| self.functions.get(d))
        } else {
            None
        };
        let shift = ((at & 3) * 8) as u32;
        Ok((function, at & !3, shift))
    }
}

/// The bits of a 32-bit register an access of `width` carries (ECAM
/// accesses are at most 32 bits).
fn width_mask(width: AccessWidth) -> u32 {
    width.truncate(u64::from(u32::MAX)) as u32
}

impl MmioDevice for PciHost {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let (function, at, shift) = self.decode(offset, width)?;
        // An absent function reads as all ones (no device answers).
        let dword = function.map_or(u32::MAX, |f| f.dword(at));
        Ok(u64::from((dword >> shift) & width_mask(width)))
    }

    fn write(
        &self,
        _: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        let (function, at, shift) = self.decode(offset, width)?;
        if let Some(f) = function {
            f.write_dword(at, width_mask(width) << shift, (value as u32) << shift);
        }
        Ok(())
    }

    /// The VM is reset: commands cleared (INTx enabled), BARs back home.
    fn reset(&self) {
        for f in &self.functions {
            f.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Recorder;
    use super::super::Doorbell;
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec;
    use tessera_config::ChannelMember;

    const A: Accessor = Accessor { vcpu: 0 };
    const B: AccessWidth = AccessWidth::Byte;
    const H: AccessWidth = AccessWidth::Half;
    const W: AccessWidth = AccessWidth::Word;
    /// ECAM offset of device `d`, function 0.
    const fn dev(d: u64) -> u64 {
        d << 15
    }

    /// A 0x30000-byte channel between VM 4 (member 0) and VM 2 (member 1),
    /// VM 2's view behind a bridge; VM 4's doorbell to ring it.
    fn setup() -> (PciHost, Doorbell<Recorder>, &'static Recorder) {
        let members = Box::leak(Box::new([
            ChannelMember {
                vm_id: 4,
                gpa: 0x6000_0000,
                writable: true,
                irq: 40,
                doorbell_gpa: 0x0a00_0000,
                line: 0,
            },
            ChannelMember {
                vm_id: 2,
                gpa: 0x8_4000_0000,
                writable: false,
                irq: 41,
                doorbell_gpa: 0x0a80_1000,
                line: 0,
            },
        ]));
        let channel: &'static Channel = Box::leak(Box::new(Channel {
            name: "ping",
            id: 3,
            hpa: 0x43c0_0000,
            size: 0x3_0000,
            members,
        }));
        let state: &'static ChannelState = Box::leak(Box::new(ChannelState::new()));
        let rec: &'static Recorder = Box::leak(Box::default());
        let host = PciHost::new(vec![Function::new(channel, state, 1, rec).unwrap()]);
        (host, Doorbell::new(channel, state, 0, rec), rec)
    }

    #[test]
    fn header_identifies_the_channel_function() {
        let (h, _, _) = setup();
        assert_eq!(h.read(A, dev(0), W), Ok(0x1c00_7e55));
        assert_eq!(h.read(A, dev(0) + 2, H), Ok(0x1c00));
        assert_eq!(h.read(A, dev(0) + 0x08, W), Ok(0x0580_0001));
        assert_eq!(
            h.read(A, dev(0) + 0x0e, B),
            Ok(0),
            "header type 0, one function"
        );
        assert_eq!(
            h.read(A, dev(0) + 0x2e, H),
            Ok(3),
            "subsystem id = channel id"
        );
        assert_eq!(h.read(A, dev(0) + 0x3d, B), Ok(1), "INTA");
        assert_eq!(h.read(A, dev(0) + 0x34, B), Ok(0), "no capabilities");
        assert_eq!(h.read(A, dev(0) + 0x100, W), Ok(0));
    }

    #[test]
    fn absent_functions_read_all_ones_and_ignore_writes() {
        let (h, _, _) = setup();
        assert_eq!(h.read(A, dev(1), W), Ok(0xffff_ffff));
        assert_eq!(h.read(A, dev(31), H), Ok(0xffff));
        assert_eq!(
            h.read(A, dev(0) + (1 << 12), W),
            Ok(0xffff_ffff),
            "function 1"
        );
        assert_eq!(h.write(A, dev(1) + 4, H, 0x406), Ok(()));
        assert_eq!(h.read(A, dev(1) + 4, W), Ok(0xffff_ffff));
    }

    #[test]
    fn accesses_ecam_does_not_allow_are_refused() {
        let (h, _, _) = setup();
        assert_eq!(h.read(A, dev(0) + 2, W), Err(AccessError::Invalid));
        assert_eq!(h.read(A, dev(0) + 1, H), Err(AccessError::Invalid));
        assert_eq!(
            h.read(A, dev(0), AccessWidth::Double),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn bars_sit_at_the_members_addresses_and_size_like_hardware() {
        let (h, _, _) = setup();
        assert_eq!(
            h.read(A, dev(0) + 0x10, W),
            Ok(0x0a80_1004),
            "64-bit memory"
        );
        assert_eq!(h.read(A, dev(0) + 0x14, W), Ok(0));
        assert_eq!(
            h.read(A, dev(0) + 0x18, W),
            Ok(0x4000_000c),
            "64-bit prefetchable"
        );
        assert_eq!(h.read(A, dev(0) + 0x1c, W), Ok(8));
        assert_eq!(h.read(A, dev(0) + 0x20, W), Ok(0), "BAR4 unimplemented");
        // Sizing: all ones in, the size mask out, then the address back.
        for (at, size_lo, size_hi) in [
            (0x10, 0xffff_f004, 0xffff_ffff),
            (0x18, 0xfffc_000c, 0xffff_ffff),
        ] {
            h.write(A, dev(0) + at, W, 0xffff_ffff).unwrap();
            h.write(A, dev(0) + at + 4, W, 0xffff_ffff).unwrap();
            assert_eq!(h.read(A, dev(0) + at, W), Ok(size_lo));
            assert_eq!(h.read(A, dev(0) + at + 4, W), Ok(size_hi));
        }
        // 0x3_0000 rounds up to a 0x4_0000 BAR.
        h.write(A, dev(0) + 0x18, W, 0x4000_0000).unwrap();
        h.write(A, dev(0) + 0x1c, W, 8).unwrap();
        assert_eq!(h.read(A, dev(0) + 0x18, W), Ok(0x4000_000c));
        h.reset();
        assert_eq!(h.read(A, dev(0) + 0x10, W), Ok(0x0a80_1004));
    }

    #[test]
    fn a_ring_sets_the_status_bit_and_raises_inta() {
        let (h, ringer, rec) = setup();
        h.write(A, dev(0) + 4, H, 0x0006).unwrap();
        assert_eq!(h.read(A, dev(0) + 4, W), Ok(0x0000_0006));
        ringer.write(A, super::super::reg::RING, W, 1).unwrap();
        assert_eq!(*rec.0.lock(), [(2, 41)]);
        assert_eq!(h.read(A, dev(0) + 6, H), Ok(0x0008), "status: interrupt");
    }

    /// What `uio_pci_generic` and its userspace do: the handler sets INTx
    /// disable; rings meanwhile raise nothing; userspace acknowledges and
    /// clears it, and a ring that came meanwhile raises INTA again then.
    #[test]
    fn intx_disable_holds_rings_back_until_reenabled() {
        let (h, ringer, rec) = setup();
        let bell = super::super::reg::RING;
        h.write(A, dev(0) + 4, H, 0x0006).unwrap();
        ringer.write(A, bell, W, 1).unwrap();
        // The handler masks (a byte write to the command's high half).
        h.write(A, dev(0) + 5, B, 0x04).unwrap();
        assert_eq!(h.read(A, dev(0) + 4, W), Ok(0x0008_0406));
        ringer.write(A, bell, W, 1).unwrap();
        assert_eq!(rec.0.lock().len(), 1, "held back while disabled");
        // Re-enabled with the ring still pending: raised again.
        h.write(A, dev(0) + 4, H, 0x0006).unwrap();
        assert_eq!(rec.0.lock().len(), 2);
        // Masked, acknowledged, re-enabled: nothing pending, nothing raised.
        h.write(A, dev(0) + 4, H, 0x0406).unwrap();
        let pending = ringer.state.pending_for(1);
        assert_eq!(pending, 0b01);
        ringer.state.acknowledge(1, pending);
        h.write(A, dev(0) + 4, H, 0x0006).unwrap();
        assert_eq!(rec.0.lock().len(), 2);
        assert_eq!(h.read(A, dev(0) + 6, H), Ok(0));
    }

    #[test]
    fn reset_reenables_intx() {
        let (h, ringer, rec) = setup();
        h.write(A, dev(0) + 4, H, 0x0406).unwrap();
        h.reset();
        assert_eq!(h.read(A, dev(0) + 4, H), Ok(0));
        ringer.write(A, super::super::reg::RING, W, 1).unwrap();
        assert_eq!(rec.0.lock().len(), 1);
    }

    #[test]
    fn only_the_writable_command_bits_stick() {
        let (h, _, _) = setup();
        h.write(A, dev(0) + 4, W, 0xffff_ffff).unwrap();
        assert_eq!(h.read(A, dev(0) + 4, H), Ok(0x0546));
        assert_eq!(h.read(A, dev(0) + 6, H), Ok(0), "status is not written");
        h.write(A, dev(0) + 0x3c, B, 0x2a).unwrap();
        assert_eq!(h.read(A, dev(0) + 0x3c, H), Ok(0x012a));
    }
}
