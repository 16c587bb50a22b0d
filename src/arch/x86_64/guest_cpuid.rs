//! The CPUID a guest sees: the host's values with VMX hidden, the
//! hypervisor bit set, the vCPU's own APIC id (an x2APIC with the
//! TSC-deadline timer, which `vlapic` emulates), and a Tessera leaf range at
//! 0x4000_0000 (the range hypervisors use; Linux reads its signature).

/// Leaf 0x4000_0000: EAX = highest Tessera leaf, EBX:ECX:EDX = [`SIGNATURE`].
pub const HYPERVISOR_LEAF: u32 = 0x4000_0000;
/// Leaf 0x4000_0001: EAX = VM id, EBX = vCPU count, ECX = this vCPU.
pub const INFO_LEAF: u32 = 0x4000_0001;
/// The 12-byte signature in EBX, ECX, EDX of leaf 0x4000_0000.
pub const SIGNATURE: &[u8; 12] = b"TesseraTsrHV";

/// CPUID.1:ECX.VMX.
const ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX bit 31: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX: x2APIC and the TSC-deadline timer mode, both of which
/// the virtual local APIC provides whatever the host has.
const ECX_X2APIC_TSC_DEADLINE: u32 = 1 << 21 | 1 << 24;
/// CPUID.1:EDX: an on-chip APIC.
const EDX_APIC: u32 = 1 << 9;

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub struct Asker {
    /// VM id.
    pub vm_id: u16,
    /// vCPUs of the VM.
    pub vcpus: u32,
    /// This vCPU's index (also its virtual APIC id).
    pub vcpu: u32,
}

/// The guest's EAX, EBX, ECX, EDX for `leaf`, given what the host CPU
/// answered for it (`host`, ignored for the Tessera leaves).
pub fn guest_cpuid(leaf: u32, host: [u32; 4], who: Asker) -> [u32; 4] {
    let [a, mut b, mut c, mut d] = host;
    match leaf {
        1 => {
            c = (c & !ECX_VMX) | ECX_HYPERVISOR | ECX_X2APIC_TSC_DEADLINE;
            d |= EDX_APIC;
            // EBX[31:24] initial APIC id, [23:16] logical processors.
            b = (b & 0x0000_ffff) | (who.vcpu & 0xff) << 24 | (who.vcpus & 0xff) << 16;
            [a, b, c, d]
        }
        HYPERVISOR_LEAF => {
            let word = |i: usize| {
                u32::from_le_bytes([
                    SIGNATURE[i],
                    SIGNATURE[i + 1],
                    SIGNATURE[i + 2],
                    SIGNATURE[i + 3],
                ])
            };
            [INFO_LEAF, word(0), word(4), word(8)]
        }
        INFO_LEAF => [u32::from(who.vm_id), who.vcpus, who.vcpu, 0],
        // Other hypervisor leaves: nothing there.
        0x4000_0002..=0x4fff_ffff => [0; 4],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: Asker = Asker {
        vm_id: 3,
        vcpus: 2,
        vcpu: 1,
    };

    #[test]
    fn leaf1_hides_vmx_and_says_hypervisor() {
        let host = [0x506e3, 0x0810_0800, 0x7ffa_fbff, 0xbfeb_fbff];
        let [a, b, c, d] = guest_cpuid(1, host, WHO);
        assert_eq!(a, 0x506e3);
        assert_eq!(c & ECX_VMX, 0);
        assert_ne!(c & ECX_HYPERVISOR, 0);
        assert_eq!(
            c & !(ECX_HYPERVISOR | ECX_X2APIC_TSC_DEADLINE),
            0x7ffa_fbff & !(ECX_VMX | ECX_X2APIC_TSC_DEADLINE)
        );
        assert_eq!(c & ECX_X2APIC_TSC_DEADLINE, ECX_X2APIC_TSC_DEADLINE);
        assert_eq!(b >> 24, 1, "APIC id is the vCPU index");
        assert_eq!((b >> 16) & 0xff, 2);
        assert_eq!(b & 0xffff, 0x0800);
        assert_eq!(d, 0xbfeb_fbff);
    }

    #[test]
    fn tessera_leaves() {
        let [max, b, c, d] = guest_cpuid(HYPERVISOR_LEAF, [7; 4], WHO);
        assert_eq!(max, INFO_LEAF);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&sig, SIGNATURE);
        assert_eq!(guest_cpuid(INFO_LEAF, [7; 4], WHO), [3, 2, 1, 0]);
        assert_eq!(guest_cpuid(0x4000_0005, [7; 4], WHO), [0; 4]);
        assert_eq!(guest_cpuid(0, [0xd, 1, 2, 3], WHO), [0xd, 1, 2, 3]);
    }
}
