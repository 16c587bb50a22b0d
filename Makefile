# Tessera: `make run ARCH=aarch64` boots the default config in QEMU,
# `make run ARCH=x86_64` the default x86 config in Bochs, `make test` runs
# every test. Missing tools are installed by scripts/setup.sh (and
# scripts/setup-x86.sh for the x86 targets).

ARCH ?= aarch64

ifeq ($(ARCH),aarch64)
TARGET := aarch64-unknown-none-softfloat
DEFAULT_CONFIG := configs/qemu-virt-linux.toml
# The Linux guests' kernel and initramfs (AArch64 configs only).
BUILD_ASSETS := linux-assets
else ifeq ($(ARCH),x86_64)
TARGET := x86_64-unknown-none
DEFAULT_CONFIG := configs/bochs-x86-demo.toml
BUILD_ASSETS :=
else
$(error ARCH=$(ARCH) is not supported (aarch64 or x86_64))
endif
# `make image PLATFORM=rpi4`: the Raspberry Pi 4 SD card (docs/RPI4.md).
PLATFORM ?=
ifeq ($(PLATFORM),rpi4)
DEFAULT_CONFIG := configs/rpi4.toml
endif
CONFIG ?= $(DEFAULT_CONFIG)
# Cargo features of the hypervisor (tests only: fault-injection).
FEATURES ?=

# Debian's Rust builds core/alloc from source for bare-metal targets
# (rustup here has neither the targets nor rust-src). x86_64-unknown-none
# defaults to position-independent code; GRUB loads the ELF where it is
# linked and applies no relocations, so it is built static.
HYP_CARGO := RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
	CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="-C relocation-model=static" /usr/bin/cargo
AARCH64_TARGET := aarch64-unknown-none-softfloat
X86_TARGET := x86_64-unknown-none
X86_CHECK_CONFIG := configs/bochs-x86-demo.toml
X86_GUEST_DIR := guests/x86guest
X86_GUEST_ELF := $(X86_GUEST_DIR)/target/$(X86_TARGET)/release
BUILD_STD := -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem
OBJCOPY := /usr/lib/llvm-22/bin/llvm-objcopy

CONFIG_NAME := $(basename $(notdir $(CONFIG)))
IMAGE_DIR := build/$(ARCH)/$(CONFIG_NAME)
IMAGE := $(IMAGE_DIR)/tessera.bin
ELF := target/$(TARGET)/release/tessera

# QEMU virt with EL2 and GICv3; semihosting lets the hypervisor report a
# failed run through QEMU's exit status.
# The memory size is the one the build computed for the config.
QEMU := qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a72 \
	-smp 4 -nographic -semihosting-config enable=on,target=native
# What `make run` attaches: QEMU's second PL011 (uart1) to a file, and a
# small virtio disk for the VM that is given the virtio-mmio page.
RUN_DISK := build/run-disk.img
RUN_UART1 := build/run-uart1.log
QEMU_TIMEOUT ?= 3600

# Linux guest assets (Debian 12's arm64 kernel, a busybox initramfs), fetched
# and built by scripts/fetch-linux.sh; see docs/LINUX.md.
LINUX_DIR := build/linux
LINUX_IMAGE := $(LINUX_DIR)/Image
LINUX_INITRAMFS := $(LINUX_DIR)/initramfs.cpio.gz
LINUX_ASSETS := $(LINUX_IMAGE) $(LINUX_INITRAMFS)

.PHONY: all setup setup-x86 guests x86-guests build iso image run test unit-test boot-test fuzz bench \
	check fmt clean linux-assets linux-baseline rpi4-assets

all: build

setup:
	@bash scripts/setup.sh

setup-x86: setup
	@bash scripts/setup-x86.sh

guests: setup x86-guests
	@$(MAKE) -s -C guests

# The x86 test guests (their own workspace): build/guests/x86_64/*.bin.
x86-guests: setup
	@cd $(X86_GUEST_DIR) && $(HYP_CARGO) build -q --release --locked -Zbuild-std=core \
		-Zbuild-std-features=compiler-builtins-mem --target $(X86_TARGET)
	@mkdir -p build/guests/x86_64
	@for g in x86guest x86fault x86bench x86smp x86echo x86irq x86ivc; do \
		$(OBJCOPY) -O binary $(X86_GUEST_ELF)/$$g build/guests/x86_64/$$g.bin; done

# The image is always rebuilt through cargo (cheap when nothing changed):
# the config path is an input make cannot see into. AArch64 gets a raw
# Image (tessera.bin); x86_64 boots the ELF through multiboot2.
build: guests $(BUILD_ASSETS)
	@mkdir -p $(IMAGE_DIR)
	TESSERA_CONFIG=$(CONFIG) $(HYP_CARGO) build --release $(BUILD_STD) --target $(TARGET) \
		$(if $(FEATURES),--features $(FEATURES))
ifeq ($(ARCH),aarch64)
	@$(OBJCOPY) -O binary $(ELF) $(IMAGE)
	@echo "image: $(IMAGE)"
endif
	@cp $(ELF) $(IMAGE_DIR)/tessera.elf
ifeq ($(ARCH),x86_64)
	@echo "image: $(IMAGE_DIR)/tessera.elf"
endif

# A GRUB rescue image booting the hypervisor with multiboot2 on BIOS and
# UEFI machines (x86_64): build/x86_64/<config>/tessera.iso, ready for dd.
ISO := $(IMAGE_DIR)/tessera.iso
iso: build setup-x86
ifneq ($(ARCH),x86_64)
	$(error make iso is for ARCH=x86_64)
endif
	@rm -rf $(IMAGE_DIR)/iso && mkdir -p $(IMAGE_DIR)/iso/boot/grub
	@cp $(ELF) $(IMAGE_DIR)/iso/boot/tessera.elf
	@cp boot/x86_64/grub.cfg $(IMAGE_DIR)/iso/boot/grub/grub.cfg
	@grub-mkrescue -o $(ISO) $(IMAGE_DIR)/iso >$(IMAGE_DIR)/grub-mkrescue.log 2>&1 || \
		{ cat $(IMAGE_DIR)/grub-mkrescue.log; exit 1; }
	@echo "iso: $(ISO)"

# A Raspberry Pi 4 SD-card image (PLATFORM=rpi4): the boot firmware and
# device tree from Debian (scripts/fetch-rpi4.sh, cached in build/rpi4/),
# config.txt and the hypervisor in one FAT32 partition, written without
# root: build/aarch64/<config>/sdcard.img, ready for dd.
SDCARD := $(IMAGE_DIR)/sdcard.img
image: build rpi4-assets
ifneq ($(PLATFORM),rpi4)
	$(error make image is for PLATFORM=rpi4)
endif
	@bash scripts/mkimage-rpi4.sh $(IMAGE_DIR)/tessera.elf $(IMAGE) $(SDCARD)

ifeq ($(ARCH),x86_64)
run: iso
	FOLLOW=1 BOCHS_TIMEOUT=300 bash scripts/run-bochs.sh $(ISO) $(IMAGE_DIR)/com1.log
else ifeq ($(PLATFORM),rpi4)
# The Pi system on QEMU's raspi4b, loaded as the Pi firmware would (EL2,
# the board's device tree in x0, secondaries on the spin table).
run: build rpi4-assets
	timeout --foreground $(QEMU_TIMEOUT) qemu-system-aarch64 -M raspi4b -smp 4 -m 2G \
		-nographic -dtb build/rpi4/bcm2711-rpi-4-b.dtb -kernel $(IMAGE)
else
run: build
	@[ -f $(RUN_DISK) ] || { printf 'TESSERA-DISK-PATTERN\n' > $(RUN_DISK); truncate -s 4M $(RUN_DISK); }
	timeout --foreground $(QEMU_TIMEOUT) $(QEMU) -m $$(cat $(IMAGE_DIR)/qemu-memory) \
		-serial mon:stdio -serial file:$(RUN_UART1) \
		-drive file=$(RUN_DISK),if=none,format=raw,id=d0 -device virtio-blk-device,drive=d0 \
		-kernel $(IMAGE)
endif

# Host unit tests, then the boot tests (which build images with `make build`
# or `make iso` and boot them in QEMU or Bochs). All are cargo tests, so
# results are counted.
test: guests check setup-x86
	cargo test --workspace --exclude tessera-boot-tests --features tessera-config/build
	cargo test -p tessera-boot-tests --tests -- --test-threads=2

unit-test:
	cargo test --workspace --exclude tessera-boot-tests --features tessera-config/build

boot-test: guests check setup-x86
	cargo test -p tessera-boot-tests --tests -- --test-threads=2

# The fuzz targets (docs/TESTING.md), long: FUZZ_CASES inputs each, one
# target with FUZZ_TARGET=<name> (e.g. esr_decode). `make test` runs them
# with a small count; each prints `fuzz <name>: <n> inputs, 0 failures`.
FUZZ_CASES ?= 1000000
FUZZ_TARGET ?=
fuzz:
	FUZZ_CASES=$(FUZZ_CASES) cargo test --profile fuzz --lib --tests -p tessera -p tessera-config \
		--features tessera-config/build fuzz_$(FUZZ_TARGET) -- --nocapture --test-threads=1

# The script is idempotent: without network work when the assets exist, and
# it rebuilds the initramfs when guests/linux/ changed.
linux-assets:
	@bash scripts/fetch-linux.sh

# The Pi's boot firmware and device tree (idempotent, cached in build/rpi4/).
rpi4-assets:
	@bash scripts/fetch-rpi4.sh

# The Linux guest booted in plain QEMU (no hypervisor), its checks verified.
linux-baseline: linux-assets
	@bash scripts/linux-baseline.sh

ifeq ($(ARCH),x86_64)
bench: setup-x86
	@bash scripts/bench-x86.sh
else
bench: setup
	@bash scripts/bench.sh
endif

# Formatting and lints, host and bare-metal (Debian's clippy for the
# latter), for both architectures: the x86_64 hypervisor is linted with the
# Bochs config, whose guest images `guests` builds.
check: setup guests
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features tessera-config/build -- -D warnings
	PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release $(BUILD_STD) --target $(AARCH64_TARGET) -- -D warnings
	TESSERA_CONFIG=$(X86_CHECK_CONFIG) PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release \
		$(BUILD_STD) --target $(X86_TARGET) -- -D warnings
	cd guests && cargo fmt --all --check
	cd guests && PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release -Zbuild-std=core \
		-Zbuild-std-features=compiler-builtins-mem --target $(AARCH64_TARGET) -- -D warnings
	cd $(X86_GUEST_DIR) && cargo fmt --check
	cd $(X86_GUEST_DIR) && PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release -Zbuild-std=core \
		-Zbuild-std-features=compiler-builtins-mem --target $(X86_TARGET) -- -D warnings

fmt:
	cargo fmt --all

clean:
	rm -rf build target guests/target $(X86_GUEST_DIR)/target
