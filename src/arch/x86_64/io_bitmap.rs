//! The VMX I/O bitmaps of a VM: one bit per port, set = the access exits.
//! Every port exits except the ranges passed through by the config (SDM
//! 25.6.4: bitmap A covers ports 0-0x7fff, B 0x8000-0xffff).

use tessera_config::PortRange;

/// Bytes of both bitmaps (two 4 KiB pages, A then B).
pub const SIZE: usize = 8192;

/// Fills `bitmaps` (A then B) for a VM passing `passthrough` through.
pub fn fill(bitmaps: &mut [u8; SIZE], passthrough: &[PortRange]) {
    bitmaps.fill(0xff);
    for r in passthrough {
        for port in u32::from(r.base)..r.end() {
            let port = port as usize;
            bitmaps[port / 8] &= !(1 << (port % 8));
        }
    }
}

/// Whether an access to `port` exits under `bitmaps`.
pub fn traps(bitmaps: &[u8; SIZE], port: u16) -> bool {
    bitmaps[usize::from(port) / 8] & 1 << (port % 8) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    #[test]
    fn only_passthrough_ports_do_not_exit() {
        let mut b = Box::new([0u8; SIZE]);
        fill(
            &mut b,
            &[
                PortRange {
                    base: 0x80,
                    size: 1,
                },
                PortRange {
                    base: 0x7ffe,
                    size: 4,
                },
            ],
        );
        assert!(!traps(&b, 0x80));
        assert!(traps(&b, 0x7f) && traps(&b, 0x81));
        assert!(traps(&b, 0x3f8));
        // A range across the A/B boundary.
        for p in 0x7ffe..=0x8001 {
            assert!(!traps(&b, p), "{p:#x}");
        }
        assert!(traps(&b, 0x8002));
        assert!(traps(&b, 0xffff));
    }
}
