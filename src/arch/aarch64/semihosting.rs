//! Arm semihosting, used only on emulator boards (`semihosting_exit`) to end
//! the run with a failure status, which PSCI cannot express.

/// SYS_EXIT with ADP_Stopped_ApplicationExit and `code`: ends the emulator
/// with exit status `code`. Returns only if semihosting is not enabled.
pub fn exit(code: u64) {
    const SYS_EXIT: u64 = 0x18;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
    let block = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: the semihosting call reads the two-word block; on an emulator
    // without semihosting this board option must not be set (HLT would trap).
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
    }
}
