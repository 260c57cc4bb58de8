//! The scenario file format (RON). `docs/scenario-format.md` documents it with an
//! example for every feature; this file is the source of truth. Unknown fields are
//! rejected everywhere, so a typo is an error with a position, never silently
//! ignored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A number, or a symbol expression such as `"pm_active"`, `"pcpu+0x10"` or
/// `"proc.cr3"`, resolved once the scenario's symbols are known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A literal.
    Num(u64),
    /// A symbol expression.
    Sym(String),
}

/// A whole scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short identifier, shown in reports.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The machine.
    #[serde(default)]
    pub machine: MachineSpec,
    /// Named constants and addresses.
    #[serde(default)]
    pub symbols: BTreeMap<String, u64>,
    /// Where page tables for the address spaces are allocated (physical, 4 KiB
    /// frames, in order). Default: the last 4 MiB of memory.
    #[serde(default)]
    pub page_tables: Option<Range>,
    /// Named address spaces, materialised as real page tables.
    #[serde(default)]
    pub address_spaces: BTreeMap<String, AddressSpace>,
    /// Initialised data, placed by linear address (through the address spaces) or
    /// physical address.
    #[serde(default)]
    pub data: Vec<Data>,
    /// Code sections.
    #[serde(default)]
    pub code: Vec<Code>,
    /// ELF64 x86-64 relocatable objects (`gcc -c` output) loaded, relocated and
    /// linked with each other and with `code` (docs/objects.md). (Left out when
    /// empty, so saved scenarios look as they did.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Object>,
    /// Functions the objects call that the scenario does not model: each becomes
    /// a small piece of scenario code after the objects. (Left out when empty.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stubs: Vec<Stub>,
    /// An interrupt descriptor table the builder writes and loads on every core
    /// that does not set its own `idt`.
    #[serde(default)]
    pub idt: Option<IdtSpec>,
    /// Each core's initial state; cores without an entry start halted with IF=0.
    #[serde(default)]
    pub cores: Vec<CoreInit>,
    /// Which core runs when. `tlbemu run` requires one; `tlbemu explore`
    /// ignores it and searches the interleavings itself.
    #[serde(default)]
    pub schedule: Vec<Sched>,
    /// Step budget for the whole run; a stop condition that never comes ends the
    /// run as "schedule stuck" when it runs out.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Which stale uses are violations.
    #[serde(default)]
    pub coherence: Coherence,
    /// What must hold at the end of this scenario's schedule.
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// What must hold at the end of every complete schedule: checked by `run`
    /// after its schedule, and by `explore` after every interleaving it finishes.
    /// (Left out when empty, so saved scenarios look as they did.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<Expect>,
    /// Data the scenario's cores share: `explore` makes every access to these
    /// linear ranges a scheduling point. Without the list, every data access is
    /// one (sound, but more points to search). See docs/explore.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<Shared>,
    /// Software translation caches to check (`docs/scenario-format.md`, "Software translation caches"): regions whose
    /// real PTEs a kernel fills from software page tables, so each real PTE there
    /// is a cache of a software entry and can go stale like a TLB entry.
    /// (Left out when saving a scenario that declares none, so saved debugger
    /// sessions of other scenarios look as they did.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_tlbs: Vec<SoftTlb>,
    /// Watched words by name: every read and write of each by a core is
    /// recorded with its value and changed bits, shown in stale-use
    /// explanations, traces and the debugger. (Left out when saving a scenario
    /// that watches none.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub watch: BTreeMap<String, Watch>,
}

/// A watched word: `at` is linear in address space `space`, or physical when
/// `space` is absent (as in `Mem` expectations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Address of the word.
    pub at: Value,
    /// Address space translating `at`; physical when absent.
    #[serde(default)]
    pub space: Option<String>,
    /// Bytes: 1, 2, 4 or 8 (default 8).
    #[serde(default)]
    pub size: Option<u8>,
}

/// A range of shared data, by linear address (a symbol expression).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shared {
    /// First byte (a number or a symbol expression, like `pmap+PM_ACTIVE`).
    pub at: Value,
    /// Length in bytes (default 8, one word).
    #[serde(default)]
    pub len: Option<u64>,
}

/// A software translation cache: the real PTEs of `region` in `space` are filled
/// by kernel code from software page tables (the DragonFly vkernel's VPTEs for a
/// MAP_VPAGETABLE region), so the oracle treats each as a cached copy of the
/// software entry and reports an access through one that no longer agrees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftTlb {
    /// Shown in reports ("vkernel VPTEs").
    pub name: String,
    /// The address space whose real page tables hold the cache; accesses are
    /// checked on cores whose CR3 names its root.
    pub space: String,
    /// The cached region (page aligned; at most 64 MiB).
    pub region: SoftRegion,
    /// Where the root software entry lives (the vkernel's master PDE, set with
    /// MADV_SETMAP). Its location is fixed at the start; a write to it is seen
    /// like a write to any other software entry.
    pub root: SoftRoot,
    /// How the software entries are laid out (bits, levels, backing).
    pub layout: SoftLayoutDecl,
}

/// A linear region `[va, va + len)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftRegion {
    /// First byte (page aligned).
    pub va: Value,
    /// Length in bytes (a multiple of 4 KiB).
    pub len: Value,
}

/// The location of a software root entry: a linear address in `space`, or
/// physical when `space` is absent (as in `Mem` expectations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftRoot {
    /// Address of the 8-byte root entry.
    pub at: Value,
    /// Address space translating `at`; physical when absent.
    #[serde(default)]
    pub space: Option<String>,
}

/// The layout of a kernel's software page-table entries, as its host-side walk
/// reads them (`docs/scenario-format.md`, "Software translation caches"). Each bit
/// field is a number or a symbol expression and may name several bits (all of
/// them must be set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftLayoutDecl {
    /// Table levels below the root entry (0..=4; 0: the root entry is the leaf).
    pub levels: u8,
    /// Index bits per level (default 9: 512 entries of 8 bytes per table). The
    /// lowest level is indexed by the offset's bits from 12 up.
    #[serde(default)]
    pub index_bits: Option<u8>,
    /// Valid bit(s): an entry without them ends the walk with a fault.
    pub valid: Value,
    /// Write bit(s): needed at every level for the host to map the page writable.
    pub write: Value,
    /// Modified bit(s): needed in the leaf too before the host maps the page
    /// writable (so the first write faults and the host sets them).
    #[serde(default)]
    pub dirty: Option<Value>,
    /// No-execute bit(s): set at any level, fetches are forbidden.
    #[serde(default)]
    pub no_exec: Option<Value>,
    /// Page-size bit(s): end the walk early with a bigger page.
    #[serde(default)]
    pub page_size: Option<Value>,
    /// The frame field: the software-physical address of the next table or page.
    pub frame: Value,
    /// Host physical address of software-physical 0: tables and frames named by
    /// entries are at `backing + frame`.
    pub backing: Value,
}

/// A physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// CPU features a scenario can turn off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Feature {
    /// Process-context identifiers.
    Pcid,
    /// The INVPCID instruction.
    Invpcid,
    /// Global pages.
    Pge,
    /// Supervisor-mode execution prevention.
    Smep,
    /// Supervisor-mode access prevention.
    Smap,
    /// Execute-disable.
    Nx,
    /// 1-GByte pages.
    Huge1G,
}

/// TLB replacement policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Policy {
    /// Least recently used (default).
    #[default]
    Lru,
    /// First in, first out.
    Fifo,
    /// Never evict: maximum exposure of stale entries.
    Unbounded,
}

/// A TLB's geometry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlbSpec {
    /// Entries in the data (or unified) TLB.
    #[serde(default = "d_entries")]
    pub entries: usize,
    /// Associativity.
    #[serde(default = "d_ways")]
    pub ways: usize,
    /// Replacement policy.
    #[serde(default)]
    pub policy: Policy,
    /// A separate instruction TLB of the same geometry (default true).
    #[serde(default = "d_true")]
    pub split: bool,
}

fn d_entries() -> usize {
    64
}
fn d_ways() -> usize {
    4
}
fn d_true() -> bool {
    true
}
/// No RIP given: the builder then requires `call`.
fn d_rip() -> Value {
    Value::Sym(String::new())
}

impl Default for TlbSpec {
    fn default() -> Self {
        TlbSpec {
            entries: 64,
            ways: 4,
            policy: Policy::Lru,
            split: true,
        }
    }
}

/// Paging-structure-cache capacities (0 disables a level).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PscSpec {
    /// PML4E cache entries.
    pub pml4e: usize,
    /// PDPTE cache entries.
    pub pdpte: usize,
    /// PDE cache entries.
    pub pde: usize,
}

/// Named CPU errata (opt-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ErratumSpec {
    /// With CR4.PCIDE=1, INVLPG leaves global TLB entries for the page in place.
    InvlpgMissesGlobalWithPcid,
}

/// The machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Cores, 1..=64.
    #[serde(default = "d_cores")]
    pub cores: usize,
    /// Physical memory in bytes (default 64 MiB).
    #[serde(default = "d_memory")]
    pub memory: u64,
    /// CPU features; when given, exactly these (default: all).
    #[serde(default)]
    pub features: Option<Vec<Feature>>,
    /// MAXPHYADDR (default 46).
    #[serde(default = "d_maxphy")]
    pub maxphyaddr: u8,
    /// TLB geometry.
    #[serde(default)]
    pub tlb: TlbSpec,
    /// Paging-structure caches.
    #[serde(default)]
    pub psc: Option<PscSpec>,
    /// Errata.
    #[serde(default)]
    pub errata: Vec<ErratumSpec>,
    /// Also perform the invalidations the SDM permits but does not require.
    #[serde(default)]
    pub extra_invalidations: bool,
}

fn d_cores() -> usize {
    1
}
fn d_memory() -> u64 {
    64 << 20
}
fn d_maxphy() -> u8 {
    46
}

impl Default for MachineSpec {
    fn default() -> Self {
        MachineSpec {
            cores: 1,
            memory: d_memory(),
            features: None,
            maxphyaddr: 46,
            tlb: TlbSpec::default(),
            psc: None,
            errata: Vec::new(),
            extra_invalidations: false,
        }
    }
}

/// Page-table entry flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum PteFlag {
    /// Present.
    P,
    /// Writable.
    RW,
    /// User-accessible.
    US,
    /// Write-through.
    PWT,
    /// Cache disable.
    PCD,
    /// Accessed (pre-set).
    A,
    /// Dirty (pre-set).
    D,
    /// Global.
    G,
    /// Execute-disable.
    NX,
}

/// Page size of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SizeSpec {
    /// 4 KiB pages.
    #[default]
    Size4K,
    /// 2 MiB pages.
    Size2M,
    /// 1 GiB pages.
    Size1G,
}

/// One mapping: `len` bytes at `va` → `pa`, in pages of `size`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Linear start (page aligned).
    pub va: Value,
    /// Physical start (page aligned).
    pub pa: Value,
    /// Length in bytes (default one page).
    #[serde(default)]
    pub len: Option<u64>,
    /// Leaf flags (P is not implied).
    pub flags: Vec<PteFlag>,
    /// Page size.
    #[serde(default)]
    pub size: SizeSpec,
}

/// A named address space.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSpace {
    /// PCID its CR3 carries (used when CR4.PCIDE=1).
    #[serde(default)]
    pub pcid: u16,
    /// Address spaces whose top-level entries this one shares (their upper-level
    /// tables become this space's too, as a kernel pmap's are in every process).
    #[serde(default)]
    pub share: Vec<String>,
    /// Mappings.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

/// Initialised data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Symbol naming the first byte (optional).
    #[serde(default)]
    pub name: Option<String>,
    /// Linear address (placed through the address spaces), or physical with `phys`.
    pub at: Value,
    /// `at` is a physical address.
    #[serde(default)]
    pub phys: bool,
    /// 8-byte little-endian values.
    #[serde(default)]
    pub quad: Vec<Value>,
    /// 4-byte values.
    #[serde(default)]
    pub long: Vec<Value>,
    /// Bytes.
    #[serde(default)]
    pub bytes: Vec<u8>,
    /// Zero bytes to reserve after the values (so `name` covers a whole area).
    #[serde(default)]
    pub zero: u64,
}

/// An IDT built from a list of gates.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdtSpec {
    /// Linear address of the table (256 gates, 4 KiB).
    pub at: Value,
    /// The gates; vectors not listed are not present.
    pub gates: Vec<Gate>,
}

/// One 64-bit IDT gate (SDM Vol. 3A 6.14.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Vector 0..=255.
    pub vector: u8,
    /// Handler entry (label or address).
    pub handler: Value,
    /// Trap gate (IF stays set) instead of interrupt gate.
    #[serde(default)]
    pub trap: bool,
    /// Descriptor privilege level (3 lets INT n reach it from user mode).
    #[serde(default)]
    pub dpl: u8,
    /// Interrupt stack table index 0..=7.
    #[serde(default)]
    pub ist: u8,
}

/// Assembly syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SyntaxSpec {
    /// GNU AT&T (default, what kernel .s files use).
    #[default]
    Att,
    /// Intel (noprefix).
    Intel,
}

/// A code section: assembly text, hex bytes, or a file (assembly `.s`/`.S`/`.asm`,
/// anything else raw bytes), placed at a linear address.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Linear address of the first byte.
    pub at: Value,
    /// Syntax of `asm` / an assembly file.
    #[serde(default)]
    pub syntax: SyntaxSpec,
    /// Assembly text.
    #[serde(default)]
    pub asm: Option<String>,
    /// Hex bytes.
    #[serde(default)]
    pub hex: Option<String>,
    /// Path relative to the scenario file.
    #[serde(default)]
    pub file: Option<String>,
}

/// An ELF relocatable object: its allocated sections are placed at linear
/// addresses, its symbols become labels, and its relocations are applied
/// against them, the other objects' and the scenario's symbols.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object {
    /// Path relative to the scenario file.
    pub file: String,
    /// Linear address where automatic layout starts (page aligned); absent:
    /// right after the previous object's last page. The first object needs it
    /// unless `sections` places every section.
    #[serde(default)]
    pub at: Option<Value>,
    /// Physical address backing `at`: the builder then maps the laid-out pages in
    /// `space` itself, text read-only and executable, rodata read-only and
    /// data/bss writable, both execute-disabled when the machine has NX. Absent:
    /// the pages must already be mapped by the scenario.
    #[serde(default)]
    pub pa: Option<Value>,
    /// Address space that gets the mappings (with `pa`; default: the only
    /// space, or `k`).
    #[serde(default)]
    pub space: Option<String>,
    /// Sections placed at given linear addresses instead of laid out, by name
    /// (`".data.percpu": "pcpu0"`); these must be mapped by the scenario.
    #[serde(default)]
    pub sections: BTreeMap<String, Value>,
}

/// A stand-in for a function the scenario does not model. Exactly one of `ret`,
/// `stop` and `asm`, or none (a bare `ret`, leaving RAX as it was).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stub {
    /// The function's symbol (`cpu_pause`).
    pub name: String,
    /// Return this value in RAX.
    #[serde(default)]
    pub ret: Option<Value>,
    /// Stop the core here: it executes UD2 at the label `stop.REASON`, so the
    /// run shows where and why (`Stopped(core: 0, reason: Some(Exception))`).
    #[serde(default)]
    pub stop: Option<String>,
    /// Run this scenario assembly (AT&T) instead (`"pause\n ret"`).
    #[serde(default)]
    pub asm: Option<String>,
}

/// Start a core in a function with the System V AMD64 calling convention:
/// arguments in RDI, RSI, RDX, RCX, R8, R9, and a return address pushed on the
/// core's stack (`rsp` must be set).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The function (a symbol or address).
    pub func: Value,
    /// Up to six integer arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Where the function returns to: a label; absent, the builder's
    /// `tlbemu.return`, which halts the core.
    #[serde(default)]
    pub ret: Option<String>,
}

/// CR4 bits a core may start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Cr4Bit {
    /// Global pages.
    Pge,
    /// PCIDs.
    Pcide,
    /// SMEP.
    Smep,
    /// SMAP.
    Smap,
}

/// A core's initial state. Unset fields keep the 64-bit CPL 0 defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreInit {
    /// Initial RIP (label or address); with `call`, leave it out.
    #[serde(default = "d_rip")]
    pub rip: Value,
    /// Start in a function instead, with arguments and a return address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// Initial RSP.
    #[serde(default)]
    pub rsp: Option<Value>,
    /// CR3: an address-space name (its root and, with PCIDE, its PCID) or a value.
    #[serde(default)]
    pub cr3: Option<Value>,
    /// CR4 bits beyond PAE.
    #[serde(default)]
    pub cr4: Vec<Cr4Bit>,
    /// CR0.WP (default true, as every kernel runs).
    #[serde(default = "d_true")]
    pub wp: bool,
    /// EFER.NXE (default true).
    #[serde(default = "d_true")]
    pub nxe: bool,
    /// RFLAGS (default 0x2: IF clear).
    #[serde(default)]
    pub rflags: Option<u64>,
    /// Privilege level 0 or 3 (default 0).
    #[serde(default)]
    pub cpl: u8,
    /// FS base.
    #[serde(default)]
    pub fs_base: Option<Value>,
    /// GS base (per-CPU data).
    #[serde(default)]
    pub gs_base: Option<Value>,
    /// IA32_KERNEL_GS_BASE.
    #[serde(default)]
    pub kernel_gs_base: Option<Value>,
    /// IDT base (limit 4095: 256 gates).
    #[serde(default)]
    pub idt: Option<Value>,
    /// TSS base (for RSP0 / IST on interrupts from CPL 3).
    #[serde(default)]
    pub tss: Option<Value>,
    /// Any general-purpose register by name.
    #[serde(default)]
    pub regs: BTreeMap<String, Value>,
}

/// When a `Run` or `RoundRobin` stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Until {
    /// The core's RIP reaches this label (checked after each step; at least one
    /// step is taken).
    Label(String),
    /// The core's RIP reaches this address.
    Address(Value),
    /// After this many steps.
    Steps(u64),
    /// The core halts (or, for RoundRobin, every listed core is halted or stopped).
    Halt,
    /// An event of this kind happens ("stale-use", "ipi-sent", "invalidation", ...).
    Event(String),
}

/// One schedule step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Sched {
    /// Run one core until the condition.
    Run {
        /// Core.
        core: usize,
        /// Stop condition.
        until: Until,
    },
    /// Step one core `n` times.
    Step {
        /// Core.
        core: usize,
        /// Steps.
        n: u64,
    },
    /// Step the cores in turn, `quantum` steps each, until the condition holds
    /// (checked after every step, on any listed core).
    RoundRobin {
        /// Cores in order.
        cores: Vec<usize>,
        /// Steps per turn (≥ 1).
        quantum: u64,
        /// Stop condition.
        until: Until,
    },
    /// Evict the TLB entries `core` would use for `va` (a capacity eviction).
    Evict {
        /// Core.
        core: usize,
        /// Linear address.
        va: Value,
    },
    /// Speculatively fill `core`'s TLB for `va`, as hardware may at any time.
    Fill {
        /// Core.
        core: usize,
        /// Linear address.
        va: Value,
    },
}

/// Which stale uses count as violations.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Coherence {
    /// Every stale use.
    #[default]
    All,
    /// Stale uses after some core reached the label (a shootdown is complete there).
    AfterLabel(String),
    /// Accesses through stale translations to these frames after some core
    /// reached the label (the frames were freed there).
    FreedFrames {
        /// Label.
        label: String,
        /// Physical frame addresses.
        frames: Vec<Value>,
    },
    /// Per write and per core: a stale use is a violation when the core whose
    /// write made the entry stale has reached the label since that write (its
    /// shootdown has returned). An entry made stale by a CR3 load that kept it
    /// usable under another root is always a violation: no shootdown covers it.
    Completed(String),
    /// `Completed(label)`, and also: each time a core reaches the label, every
    /// entry still cached (on `cores`, every core when absent) that this core's
    /// writes or CR3 loads made stale is a violation, used or not: the shootdown
    /// claims to be complete, so nothing it covers may remain.
    CompletedLatent {
        /// Label.
        label: String,
        /// Cores whose caches are checked.
        #[serde(default)]
        cores: Option<Vec<usize>>,
    },
}

/// Why a core stopped for good, as a `Stopped` expectation names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum StopKind {
    /// An exception with no IDT to deliver it through.
    Exception,
    /// A fault while delivering #DF.
    TripleFault,
    /// An instruction tlbemu does not implement.
    Unsupported,
    /// Any other emulator error (memory outside the machine, a paging mode not
    /// modelled).
    Error,
}

/// A hang diagnosis verdict, as a `Hung` expectation names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum HangKind {
    /// Livelock or deadlock: the cores that could run spin on words no running
    /// core will change.
    Deadlock,
    /// The schedule waits for a stop condition its core never reaches.
    ScheduleWaits,
    /// The schedule runs a spinning core alone while a core that could release it
    /// gets no turn.
    Unscheduled,
    /// The step budget ran out while a core was still making progress.
    Budget,
    /// A core the schedule needs stopped for good.
    Stopped,
}

/// Access kinds in expectations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum KindSpec {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Execute,
    /// A page walk through a stale paging-structure-cache entry.
    Walk,
}

/// An expectation, checked after the schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Expect {
    /// A register of a core has a value.
    Reg {
        /// Core.
        core: usize,
        /// Register name.
        reg: String,
        /// Value.
        value: Value,
    },
    /// Memory holds a value (`size` bytes, default 8): at a linear address in an
    /// address space, or physical.
    Mem {
        /// Address.
        at: Value,
        /// Address space for a linear address; absent for physical.
        #[serde(default)]
        space: Option<String>,
        /// Size (1, 2, 4, 8).
        #[serde(default)]
        size: Option<u8>,
        /// Value.
        value: Value,
    },
    /// At least one stale use matching the given fields, of any cache (TLB,
    /// paging-structure cache, or a software cache's real PTE).
    StaleUse {
        /// Core.
        #[serde(default)]
        core: Option<usize>,
        /// Linear address (any address in the page matches).
        #[serde(default)]
        va: Option<Value>,
        /// Access kind.
        #[serde(default)]
        kind: Option<KindSpec>,
    },
    /// No stale use matching the given fields.
    NoStaleUse {
        /// Core.
        #[serde(default)]
        core: Option<usize>,
        /// Linear address.
        #[serde(default)]
        va: Option<Value>,
        /// Access kind.
        #[serde(default)]
        kind: Option<KindSpec>,
    },
    /// `StaleUse` restricted to software caches: at least one stale use of a
    /// real PTE of a `soft_tlbs` region.
    SoftStaleUse {
        /// Core.
        #[serde(default)]
        core: Option<usize>,
        /// Linear address (any address in the page matches).
        #[serde(default)]
        va: Option<Value>,
        /// Access kind (Read, Write or Execute).
        #[serde(default)]
        kind: Option<KindSpec>,
    },
    /// `NoStaleUse` restricted to software caches.
    NoSoftStaleUse {
        /// Core.
        #[serde(default)]
        core: Option<usize>,
        /// Linear address.
        #[serde(default)]
        va: Option<Value>,
        /// Access kind.
        #[serde(default)]
        kind: Option<KindSpec>,
    },
    /// Exactly this many violations (stale uses of hardware and software caches
    /// alike, and latent entries under `CompletedLatent`).
    Violations(usize),
    /// The core took (or stopped on) an exception with this vector.
    Exception {
        /// Core.
        core: usize,
        /// Vector.
        vector: u8,
    },
    /// The core ended halted.
    Halted(usize),
    /// No stale entry is cached, used or not: on `core` (every core when absent),
    /// at the end of the run, or, with `at`, whenever a core reaches label `at`
    /// (a shootdown-complete point), among the entries that core's own writes
    /// (or CR3 loads) made stale.
    NoStaleEntries {
        /// Core whose caches are checked.
        #[serde(default)]
        core: Option<usize>,
        /// Label of the completion point.
        #[serde(default)]
        at: Option<String>,
    },
    /// The core stopped for good (it then does not fail the run), for `reason`
    /// when given.
    Stopped {
        /// Core.
        core: usize,
        /// Why; any reason when absent.
        #[serde(default)]
        reason: Option<StopKind>,
    },
    /// The schedule does not complete: the run hangs, with this verdict of the
    /// hang diagnosis when given. It then does not fail the run by itself (a
    /// scenario that demonstrates a hang, and a search for hangs, say so).
    Hung {
        /// The expected verdict; any when absent.
        #[serde(default)]
        verdict: Option<HangKind>,
    },
    /// Number of events of a kind ("ipi-sent", "invalidation", ...), optionally on one core.
    Events {
        /// Kind name.
        kind: String,
        /// Core.
        #[serde(default)]
        core: Option<usize>,
        /// Count.
        count: u64,
    },
}
