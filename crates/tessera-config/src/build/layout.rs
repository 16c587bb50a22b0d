//! Where a VM's images go in its RAM. Bare-metal VMs say it themselves
//! (`kernel_load_addr`); a Linux VM's placement follows the arm64 boot
//! protocol (Linux `Documentation/arch/arm64/booting.rst`) from the
//! kernel's `Image` header.

use crate::MemoryRegion;

/// Length of the arm64 `Image` header.
pub const IMAGE_HEADER_LEN: usize = 64;
/// `"ARM\x64"` at offset 0x38, little-endian.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// The kernel goes `text_offset` bytes above a 2 MiB-aligned base.
const KERNEL_ALIGN: u64 = 0x20_0000;
/// Largest device tree the boot protocol allows.
pub const DTB_MAX: u64 = 0x20_0000;
/// Initramfs alignment (a page; Linux only needs it page aligned to free it).
const PAGE: u64 = 0x1000;
/// The kernel and initramfs must share a 1 GiB-aligned window of at most
/// 32 GiB.
const INITRD_WINDOW: u64 = 32 << 30;
const GIB: u64 = 1 << 30;

/// Page size a kernel was built for (header flags bits 1-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPageSize {
    /// Not given.
    Unspecified,
    /// 4 KiB.
    K4,
    /// 16 KiB.
    K16,
    /// 64 KiB.
    K64,
}

/// The fields of an arm64 `Image` header the loader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the load address above a 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies from its load address, BSS included.
    pub image_size: u64,
    /// Flags bit 0: the kernel is big-endian.
    pub big_endian: bool,
    /// Flags bits 1-2.
    pub page_size: KernelPageSize,
    /// Flags bit 3: the 2 MiB base may be anywhere in RAM (otherwise as
    /// close as possible to the base of RAM).
    pub anywhere: bool,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Reads the header at the start of an uncompressed arm64 `Image`.
pub fn parse_image_header(image: &[u8]) -> Result<ImageHeader, String> {
    if image.starts_with(&[0x1f, 0x8b]) {
        return Err(
            "is gzip-compressed (a vmlinuz); give the uncompressed arm64 Image \
                    (zcat vmlinuz > Image)"
                .into(),
        );
    }
    if image.len() < IMAGE_HEADER_LEN {
        return Err(format!(
            "is {} bytes, too short for an arm64 Image header ({IMAGE_HEADER_LEN} bytes)",
            image.len()
        ));
    }
    let magic = u32::from_le_bytes([image[0x38], image[0x39], image[0x3a], image[0x3b]]);
    if magic != IMAGE_MAGIC {
        return Err(format!(
            "is not an arm64 Image: no \"ARM\\x64\" magic at offset 0x38 (found {magic:#010x})"
        ));
    }
    let text_offset = le64(image, 0x08);
    let image_size = le64(image, 0x10);
    let flags = le64(image, 0x18);
    if image_size == 0 {
        return Err(
            "has image_size 0 (a kernel older than 3.17): its size with BSS is unknown".into(),
        );
    }
    if flags >> 4 != 0 {
        return Err(format!(
            "has unknown header flags {flags:#x} (bits 4-63 are reserved)"
        ));
    }
    let page_size = match (flags >> 1) & 3 {
        0 => KernelPageSize::Unspecified,
        1 => KernelPageSize::K4,
        2 => KernelPageSize::K16,
        _ => KernelPageSize::K64,
    };
    Ok(ImageHeader {
        text_offset,
        image_size,
        big_endian: flags & 1 != 0,
        page_size,
        anywhere: flags & 8 != 0,
    })
}

/// Where a Linux VM's kernel, initramfs and device tree go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxPlacement {
    /// Index of the memory region holding all three.
    pub region: usize,
    /// Kernel load address = entry point.
    pub kernel: u64,
    /// End of the kernel's `image_size` (or of its file, if longer).
    pub kernel_end: u64,
    /// Initramfs `[start, end)`.
    pub initramfs: Option<(u64, u64)>,
    /// Device tree address (x0 at entry): the start of the region's last
    /// 2 MiB block, so the tree has a 2 MiB block of its own.
    pub dtb: u64,
}

fn align_up(v: u128, a: u64) -> u128 {
    v.div_ceil(u128::from(a)) * u128::from(a)
}

/// Places a Linux VM: the kernel at the first 2 MiB boundary of the VM's
/// lowest RAM region plus `text_offset` (as close to the base of RAM as the
/// protocol asks when `anywhere` is clear); the initramfs right after the
/// kernel's `image_size`, page aligned; the device tree in the region's last
/// 2 MiB block. `kernel_len`: bytes of the Image file; `initramfs_len`:
/// bytes of the initramfs, if any. The message of an error says what does
/// not fit.
pub fn place_linux(
    regions: &[MemoryRegion],
    header: &ImageHeader,
    kernel_len: u64,
    initramfs_len: Option<u64>,
) -> Result<LinuxPlacement, String> {
    let Some((index, r)) = regions.iter().enumerate().min_by_key(|(_, r)| r.gpa) else {
        return Err("the VM has no RAM".into());
    };
    let start = u128::from(r.gpa);
    let end = start + u128::from(r.size);
    let base = align_up(start, KERNEL_ALIGN);
    let kernel = base + u128::from(header.text_offset);
    let kernel_end = kernel + u128::from(header.image_size.max(kernel_len));
    let mut next = kernel_end;
    let initramfs = initramfs_len.map(|len| {
        let s = align_up(next, PAGE);
        next = s + u128::from(len);
        (s, next)
    });
    let dtb = (end / u128::from(KERNEL_ALIGN)) * u128::from(KERNEL_ALIGN);
    let dtb = dtb.saturating_sub(u128::from(DTB_MAX));
    let need = |what: String| {
        Err(format!(
            "{what} do not fit in memory_regions[{index}] [{start:#x}, {end:#x}) \
             (kernel at {kernel:#x}, image_size {:#x}; the device tree takes the \
             region's last 2 MiB block)",
            header.image_size
        ))
    };
    if dtb < next || dtb < start {
        let parts = match initramfs_len {
            Some(len) => format!(
                "the kernel ({:#x} bytes), the initramfs ({len:#x} bytes) and a 2 MiB \
                 device-tree block",
                kernel_end - kernel
            ),
            None => format!(
                "the kernel ({:#x} bytes) and a 2 MiB device-tree block",
                kernel_end - kernel
            ),
        };
        return need(parts);
    }
    if let Some((_, i_end)) = initramfs {
        let window = (kernel / u128::from(GIB)) * u128::from(GIB);
        if i_end - window > u128::from(INITRD_WINDOW) {
            return Err(format!(
                "the kernel at {kernel:#x} and the initramfs ending at {i_end:#x} are not \
                 inside one 1 GiB-aligned window of at most 32 GiB (arm64 boot protocol)"
            ));
        }
    }
    // Every value is below `end`, which came from a u64 base and size that
    // validation keeps under the 39-bit IPA limit.
    let narrow = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    Ok(LinuxPlacement {
        region: index,
        kernel: narrow(kernel),
        kernel_end: narrow(kernel_end),
        initramfs: initramfs.map(|(s, e)| (narrow(s), narrow(e))),
        dtb: narrow(dtb),
    })
}
