//! The single-file model container: magic, format version, a table of typed, checksummed sections.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0      magic  b"MEMLM\0\r\n"        8 bytes (the CR LF catches text-mode mangling)
//! 8      format version              u32
//! 12     section count S             u32
//! 16     S x { id u32, element size u32, offset u64, byte length u64, xxh3-64 of the section }
//! 16+32S xxh3-64 of every byte before it (the header checksum)
//! ..     sections, each at an offset that is a multiple of 8, zero padding between them
//! ```
//! Opening ([`Check::Header`]) checks the magic, the version, the header checksum, that every section
//! lies inside the file, is aligned and holds whole elements, and the checksums of the small
//! sections: time independent of the trie's size, so a model of any size opens in milliseconds. The
//! bulk sections (the tries) are checksummed by [`Check::Full`] (`memlm verify`).

use std::ops::Range;

/// First eight bytes of every memlm model file.
pub const MAGIC: &[u8; 8] = b"MEMLM\0\r\n";
/// First eight bytes of every memlm shard file (tokenised text that `memlm merge` makes models of).
pub const SHARD_MAGIC: &[u8; 8] = b"MEMLMS\r\n";

/// The two kinds of file in this container: they differ in their magic number and sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A trained model.
    Model,
    /// Token ids and block lengths of a corpus (`memlm train --shard`).
    Shard,
}

impl Kind {
    /// The kind of the file at `path` by its magic number (None: neither). Anything but a regular
    /// file is refused without blocking (a FIFO with no writer included), as when a model is
    /// opened; only the first eight bytes are read.
    pub fn of_file(path: &std::path::Path) -> crate::Result<Option<Kind>> {
        use std::io::Read;
        let (file, _) = open_regular(path)?;
        let mut magic = Vec::with_capacity(MAGIC.len());
        file.take(MAGIC.len() as u64)
            .read_to_end(&mut magic)
            .map_err(|e| crate::Error::io(path, e))?;
        Ok([Kind::Model, Kind::Shard]
            .into_iter()
            .find(|kind| magic == kind.magic()))
    }

    /// The file's first eight bytes.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Model => MAGIC,
            Kind::Shard => SHARD_MAGIC,
        }
    }

    /// What the file is called in messages: "model file" or "shard file".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Model => "model file",
            Kind::Shard => "shard file",
        }
    }

    /// What a file of this kind is, said when another kind was expected.
    fn described(self) -> &'static str {
        match self {
            Kind::Model => "a memlm model, not a shard (tokenised text)",
            Kind::Shard => {
                "a memlm shard (tokenised text), not a model: make a model of it with `memlm merge`"
            }
        }
    }
}

/// Format version written by this build.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version this build reads: version 2 is version 3 without the Kneser-Ney
/// sections (such a model scores with Witten-Bell, as a model trained from instances does).
/// Files of other versions are refused.
pub const OLDEST_READABLE_VERSION: u32 = 2;

/// The first section id of format version 3 (the Kneser-Ney sections).
const FIRST_VERSION_3_SECTION: u32 = Section::KnParams as u32;

const TABLE_ENTRY: usize = 32;
const HEADER: usize = 16;
const CHECKSUM: usize = 8;

/// How much of an image is checked when it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Header, section table and the small sections: cost independent of the model's size.
    Header,
    /// Every section's checksum as well.
    Full,
}

/// Section identifiers of format version 3 (version 2 had all but the Kneser-Ney ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Section {
    /// u64 x 6: width, symbol count, padding id, training instances, weighting, vocabulary kind.
    Params = 1,
    /// f64 x W: information gain per feature.
    InfoGain = 2,
    /// f64 x W: gain ratio per feature.
    GainRatio = 3,
    /// u32 x W: features in weight order.
    FeatureOrder = 4,
    /// u64 x symbols: training frequency of every class.
    ClassCounts = 5,
    /// u32 x symbols: tie-break rank of every class (distributions store classes by rank).
    ClassRank = 6,
    /// u16 x nodes: arc labels, when every symbol id fits 16 bits.
    Labels16 = 7,
    /// u32 x nodes: arc labels otherwise.
    Labels32 = 8,
    /// Child counts as packed offsets ([`crate::offsets`]): u64 records, exception items and lengths.
    ChildRecords = 9,
    ChildExceptionItems = 11,
    ChildExceptionLens = 12,
    /// Distribution byte lengths as packed offsets.
    DistRecords = 13,
    DistExceptionItems = 15,
    DistExceptionLens = 16,
    /// The distributions: (class, varint count) entries per node.
    DistBytes = 17,
    /// u32 x (symbols + 1): offsets into SymbolBytes (models trained from instance files only).
    SymbolOffsets = 18,
    /// UTF-8 bytes of all symbol strings.
    SymbolBytes = 19,
    /// Opaque tokenizer blob (the Python package stores the zlib-compressed tokenizer JSON).
    Tokenizer = 20,
    /// Opaque UTF-8 JSON metadata (training sources, tokenizer hash, memlm version, ...).
    Metadata = 21,
    /// The unpruned instance base (TRIBL2, IB1), optional: a trie stored like the IGTree's ...
    BaseLabels16 = 22,
    BaseLabels32 = 23,
    BaseChildRecords = 24,
    BaseChildExceptionItems = 26,
    BaseChildExceptionLens = 27,
    BaseDistRecords = 28,
    BaseDistExceptionItems = 30,
    BaseDistExceptionLens = 31,
    BaseDistBytes = 32,
    /// ... plus the tails of single-instance leaves: their remaining feature values, in weight order,
    /// with their lengths as packed offsets.
    TailRecords = 33,
    TailExceptionItems = 35,
    TailExceptionLens = 36,
    TailValues16 = 37,
    TailValues32 = 38,
    /// u32 x large distributions: the IGTree nodes whose distribution is stored with its total ...
    TotalNodes = 39,
    /// ... u64 x large distributions: those totals.
    TotalCounts = 40,
    /// The same for the instance base.
    BaseTotalNodes = 41,
    BaseTotalCounts = 42,
    /// u64 x 1 (shards): the tokenizer's vocabulary size, which the token ids lie below.
    ShardParams = 43,
    /// u16 or u32 x tokens: the training text's token ids, all blocks concatenated (shards, and
    /// models trained with `--keep-tokens`) ...
    Tokens16 = 44,
    Tokens32 = 45,
    /// ... u64 x blocks: the length of every block.
    BlockLengths = 46,
    /// The Kneser-Ney scoring statistics of token models ([`crate::kneser_ney`]): u64 x 2, width
    /// (checked against the model's) and token types seen (informational, never read back) ...
    KnParams = 47,
    /// ... f64 x (3 (W + 1) + 1): D1, D2, D3+ per order, then the probability of an unseen id ...
    KnConstants = 48,
    /// ... f64 x symbols: the probabilities in the empty context ...
    KnRoot = 49,
    /// ... u32 x symbols: what follows the empty context with each id (child, leaf or nothing) ...
    KnRootNext = 61,
    /// ... f64 x 4 (optional): the document cache's weights, fitted on held-out training blocks.
    KnCache = 62,
    /// ... u16 or u32 x nodes: the farthest token of each stored context ...
    KnLabels16 = 50,
    KnLabels32 = 51,
    /// ... u32 x 4 x (nodes + 1): where its children, leaves and entries start, and its back-off
    /// weight γ (f32 bits) ...
    KnNodes = 52,
    /// ... the entries: tokens (u16 or u32) and 16-bit probability codes (top bit set: a 15-bit log
    /// code of 1 - p, else of p; `kneser_ney::quantise`). Version-3 files written before this code
    /// (branch kn-complement; a plain 16-bit log code of p) decode to wrong probabilities: no
    /// version bump, as no version 3 was released; rebuild such files ...
    KnEntryTokens16 = 55,
    KnEntryTokens32 = 56,
    KnEntryProbs = 57,
    /// ... per context seen once: its farthest token (u16 or u32) and the position of its target in
    /// the text (u32) ...
    KnLeafLabels16 = 53,
    KnLeafLabels32 = 54,
    KnLeaves = 58,
    /// ... u16 or u32: the training text, each block preceded by the padding id.
    KnText16 = 59,
    KnText32 = 60,
    /// The provenance index, optional ([`crate::provenance`]; `memlm train --provenance`): u64 x 2,
    /// bits per position and the count of positions ...
    ProvParams = 63,
    /// ... u64 words: the positions in the Kneser-Ney text, bit-packed ...
    ProvPositions = 64,
    /// ... opaque bytes: where each block came from (the Python package stores zlib-compressed
    /// source names, block and line offsets: `memlm/provenance.py`).
    ProvOrigins = 65,
}

/// The sections of the provenance index (all or none).
pub const PROVENANCE_SECTIONS: [Section; 3] = [
    Section::ProvParams,
    Section::ProvPositions,
    Section::ProvOrigins,
];

/// The sections of the Kneser-Ney statistics (their checksums are verified at first use but the small
/// ones', [`Section::is_bulk`]).
pub const KN_SECTIONS: [Section; 16] = {
    use Section::*;
    [
        KnParams,
        KnConstants,
        KnRoot,
        KnRootNext,
        KnLabels16,
        KnLabels32,
        KnEntryTokens16,
        KnEntryTokens32,
        KnEntryProbs,
        KnNodes,
        KnLeafLabels16,
        KnLeafLabels32,
        KnLeaves,
        KnText16,
        KnText32,
        KnCache,
    ]
};

/// The section ids of one stored trie.
#[derive(Clone, Copy, Debug)]
pub struct TrieSections {
    pub labels16: Section,
    pub labels32: Section,
    /// Child counts: records, exception items, exception lengths.
    pub children: [Section; 3],
    /// Distribution byte lengths: records, exception items, exception lengths.
    pub dist_offsets: [Section; 3],
    pub dist_bytes: Section,
    /// The stored totals of large distributions: node ids, totals.
    pub totals: [Section; 2],
}

impl TrieSections {
    /// The IGTree.
    pub const IGTREE: TrieSections = TrieSections {
        labels16: Section::Labels16,
        labels32: Section::Labels32,
        children: [
            Section::ChildRecords,
            Section::ChildExceptionItems,
            Section::ChildExceptionLens,
        ],
        dist_offsets: [
            Section::DistRecords,
            Section::DistExceptionItems,
            Section::DistExceptionLens,
        ],
        dist_bytes: Section::DistBytes,
        totals: [Section::TotalNodes, Section::TotalCounts],
    };

    /// The unpruned instance base.
    pub const BASE: TrieSections = TrieSections {
        labels16: Section::BaseLabels16,
        labels32: Section::BaseLabels32,
        children: [
            Section::BaseChildRecords,
            Section::BaseChildExceptionItems,
            Section::BaseChildExceptionLens,
        ],
        dist_offsets: [
            Section::BaseDistRecords,
            Section::BaseDistExceptionItems,
            Section::BaseDistExceptionLens,
        ],
        dist_bytes: Section::BaseDistBytes,
        totals: [Section::BaseTotalNodes, Section::BaseTotalCounts],
    };
}

/// The sections of the instance base's tails: records, exception items, exception lengths.
pub const TAIL_OFFSETS: [Section; 3] = [
    Section::TailRecords,
    Section::TailExceptionItems,
    Section::TailExceptionLens,
];

/// All sections, in file order.
pub const ALL_SECTIONS: [Section; 60] = [
    Section::Params,
    Section::InfoGain,
    Section::GainRatio,
    Section::FeatureOrder,
    Section::ClassCounts,
    Section::ClassRank,
    Section::Labels16,
    Section::Labels32,
    Section::ChildRecords,
    Section::ChildExceptionItems,
    Section::ChildExceptionLens,
    Section::DistRecords,
    Section::DistExceptionItems,
    Section::DistExceptionLens,
    Section::DistBytes,
    Section::SymbolOffsets,
    Section::SymbolBytes,
    Section::Tokenizer,
    Section::Metadata,
    Section::BaseLabels16,
    Section::BaseLabels32,
    Section::BaseChildRecords,
    Section::BaseChildExceptionItems,
    Section::BaseChildExceptionLens,
    Section::BaseDistRecords,
    Section::BaseDistExceptionItems,
    Section::BaseDistExceptionLens,
    Section::BaseDistBytes,
    Section::TailRecords,
    Section::TailExceptionItems,
    Section::TailExceptionLens,
    Section::TailValues16,
    Section::TailValues32,
    Section::TotalNodes,
    Section::TotalCounts,
    Section::BaseTotalNodes,
    Section::BaseTotalCounts,
    Section::ShardParams,
    Section::Tokens16,
    Section::Tokens32,
    Section::BlockLengths,
    Section::KnParams,
    Section::KnConstants,
    Section::KnRoot,
    Section::KnRootNext,
    Section::KnLabels16,
    Section::KnLabels32,
    Section::KnEntryTokens16,
    Section::KnEntryTokens32,
    Section::KnEntryProbs,
    Section::KnNodes,
    Section::KnLeafLabels16,
    Section::KnLeafLabels32,
    Section::KnLeaves,
    Section::KnText16,
    Section::KnText32,
    Section::KnCache,
    Section::ProvParams,
    Section::ProvPositions,
    Section::ProvOrigins,
];

/// The parts a model's size is reported in (`memlm info`), each with its sections; the header, the
/// weights, the class statistics and the metadata are the rest ("other").
pub const SIZE_GROUPS: [(&str, &[Section]); 10] = {
    use Section::*;
    [
        ("labels", &[Labels16, Labels32]),
        (
            "children",
            &[ChildRecords, ChildExceptionItems, ChildExceptionLens],
        ),
        (
            "distribution offsets",
            &[
                DistRecords,
                DistExceptionItems,
                DistExceptionLens,
                TotalNodes,
                TotalCounts,
            ],
        ),
        ("distributions", &[DistBytes]),
        ("symbols", &[SymbolOffsets, SymbolBytes]),
        ("training tokens", &[Tokens16, Tokens32, BlockLengths]),
        ("tokenizer", &[Tokenizer]),
        (
            "instance base",
            &[
                BaseLabels16,
                BaseLabels32,
                BaseChildRecords,
                BaseChildExceptionItems,
                BaseChildExceptionLens,
                BaseDistRecords,
                BaseDistExceptionItems,
                BaseDistExceptionLens,
                BaseDistBytes,
                BaseTotalNodes,
                BaseTotalCounts,
                TailRecords,
                TailExceptionItems,
                TailExceptionLens,
                TailValues16,
                TailValues32,
            ],
        ),
        ("kneser-ney", &KN_SECTIONS),
        ("provenance", &PROVENANCE_SECTIONS),
    ]
};

impl Section {
    /// The section of a table entry's id (None: not a section of this format version).
    pub fn from_id(id: u32) -> Option<Section> {
        ALL_SECTIONS.iter().copied().find(|&s| s as u32 == id)
    }

    /// Whether the section grows with the training data (checked by [`Check::Full`] only).
    pub fn is_bulk(self) -> bool {
        use Section::*;
        !matches!(
            self,
            Params
                | InfoGain
                | GainRatio
                | FeatureOrder
                | ClassCounts
                | ClassRank
                | SymbolOffsets
                | SymbolBytes
                | Tokenizer
                | Metadata
                | ShardParams
                | KnParams
                | KnConstants
                | KnCache
                | ProvParams
        )
    }

    fn element_size(self) -> usize {
        use Section::*;
        match self {
            Params
            | InfoGain
            | GainRatio
            | ClassCounts
            | ChildRecords
            | ChildExceptionLens
            | DistRecords
            | DistExceptionLens
            | BaseChildRecords
            | BaseChildExceptionLens
            | BaseDistRecords
            | BaseDistExceptionLens
            | TailRecords
            | TailExceptionLens
            | TotalCounts
            | BaseTotalCounts
            | ShardParams
            | BlockLengths
            | KnParams
            | KnConstants
            | KnCache
            | KnRoot
            | ProvParams
            | ProvPositions => 8,
            FeatureOrder
            | ClassRank
            | Labels32
            | ChildExceptionItems
            | DistExceptionItems
            | SymbolOffsets
            | BaseLabels32
            | BaseChildExceptionItems
            | BaseDistExceptionItems
            | TailExceptionItems
            | TailValues32
            | TotalNodes
            | BaseTotalNodes
            | Tokens32
            | KnLabels32
            | KnEntryTokens32
            | KnLeaves
            | KnLeafLabels32
            | KnRootNext
            | KnText32 => 4,
            KnNodes => 16,
            Labels16 | BaseLabels16 | TailValues16 | Tokens16 | KnLabels16 | KnEntryTokens16
            | KnEntryProbs | KnText16 | KnLeafLabels16 => 2,
            DistBytes | SymbolBytes | Tokenizer | Metadata | BaseDistBytes | ProvOrigins => 1,
        }
    }
}

/// One section's payload, ready to write.
pub struct SectionData<'a> {
    pub section: Section,
    pub bytes: &'a [u8],
}

/// Serialises sections into one image of a `kind` of file (8-byte aligned in memory, so it can be
/// viewed in place).
pub fn encode(kind: Kind, sections: &[SectionData]) -> AlignedBytes {
    let layout: Vec<(Section, usize)> = sections
        .iter()
        .map(|s| (s.section, s.bytes.len()))
        .collect();
    let mut writer = ImageWriter::new(kind, &layout);
    for s in sections {
        writer.put(s.bytes);
    }
    writer.finish()
}

/// An image of a `kind` of file written section by section: the layout (each section's id and
/// length, in file order) is fixed when it is made, and [`ImageWriter::put`] copies the next
/// section in, so that a caller may free a section's source as soon as it is in (the image's
/// pages are only touched as they are written).
pub struct ImageWriter {
    out: AlignedBytes,
    /// Each section's offset and length, in file order.
    placed: Vec<(usize, usize)>,
    /// How many sections are in.
    done: usize,
}

impl ImageWriter {
    /// An image laid out for `layout`, its header and table written (checksums but the sections').
    pub fn new(kind: Kind, layout: &[(Section, usize)]) -> ImageWriter {
        let table_end = HEADER + TABLE_ENTRY * layout.len();
        let mut placed = Vec::with_capacity(layout.len());
        let mut total = table_end + CHECKSUM;
        for &(_, len) in layout {
            let at = align8(total);
            placed.push((at, len));
            total = at + len;
        }
        let mut out = AlignedBytes::zeroed(total);
        let buf = out.as_mut_slice();
        buf[..8].copy_from_slice(kind.magic());
        buf[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf[12..16].copy_from_slice(&(layout.len() as u32).to_le_bytes());
        for (k, (&(section, len), &(at, _))) in layout.iter().zip(&placed).enumerate() {
            let e = HEADER + k * TABLE_ENTRY;
            buf[e..e + 4].copy_from_slice(&(section as u32).to_le_bytes());
            buf[e + 4..e + 8].copy_from_slice(&(section.element_size() as u32).to_le_bytes());
            buf[e + 8..e + 16].copy_from_slice(&(at as u64).to_le_bytes());
            buf[e + 16..e + 24].copy_from_slice(&(len as u64).to_le_bytes());
        }
        ImageWriter {
            out,
            placed,
            done: 0,
        }
    }

    /// Copies in the next section of the layout, whose length `bytes` must have.
    pub fn put(&mut self, bytes: &[u8]) {
        let (at, len) = self.placed[self.done];
        assert_eq!(
            bytes.len(),
            len,
            "a section's length differs from its layout's"
        );
        let buf = self.out.as_mut_slice();
        let e = HEADER + self.done * TABLE_ENTRY;
        buf[e + 24..e + 32].copy_from_slice(&checksum(bytes).to_le_bytes());
        buf[at..at + len].copy_from_slice(bytes);
        self.done += 1;
    }

    /// The image, once every section is in, with the table's checksum.
    pub fn finish(mut self) -> AlignedBytes {
        assert_eq!(
            self.done,
            self.placed.len(),
            "a section of the layout is missing"
        );
        let table_end = HEADER + TABLE_ENTRY * self.placed.len();
        let buf = self.out.as_mut_slice();
        let sum = checksum(&buf[..table_end]);
        buf[table_end..table_end + CHECKSUM].copy_from_slice(&sum.to_le_bytes());
        self.out
    }
}

/// Byte ranges and checksums of every section of a checked model image, indexed by section id.
#[derive(Clone, Debug, Default)]
pub struct SectionTable {
    ranges: Vec<Option<Range<usize>>>,
    checksums: Vec<u64>,
}

impl SectionTable {
    /// The byte range of a section, or an error naming it when the file lacks it.
    pub(crate) fn get(&self, s: Section) -> std::result::Result<Range<usize>, String> {
        self.ranges
            .get(s as usize)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("the {s:?} section is missing"))
    }

    /// Whether the file holds section `s`.
    pub fn contains(&self, s: Section) -> bool {
        self.get(s).is_ok()
    }

    /// Bytes of section `s` (0 when the file lacks it).
    pub fn size(&self, s: Section) -> usize {
        self.get(s).map_or(0, |r| r.len())
    }

    /// Checks the checksums of `sections` (those the file holds) against `bytes`, the image the
    /// table was decoded from: what a model runs once before the first query that reads them.
    pub(crate) fn verify(
        &self,
        bytes: &[u8],
        kind: Kind,
        sections: &[Section],
    ) -> std::result::Result<(), String> {
        for &s in sections {
            let Ok(range) = self.get(s) else { continue };
            let stored = self.checksums[s as usize];
            if bytes.get(range).map(checksum) != Some(stored) {
                return Err(format!(
                    "corrupt {} (checksum mismatch in section {s:?})",
                    kind.noun()
                ));
            }
        }
        Ok(())
    }
}

/// Checks magic, version, section table and checksums of an image of a `kind` of file, as far as
/// `check` says.
pub(crate) fn decode(
    bytes: &[u8],
    kind: Kind,
    check: Check,
) -> std::result::Result<SectionTable, String> {
    let other = match kind {
        Kind::Model => Kind::Shard,
        Kind::Shard => Kind::Model,
    };
    if bytes.starts_with(other.magic()) {
        return Err(other.described().into());
    }
    if bytes.is_empty() {
        return Err(format!(
            "an empty file (0 bytes), not a memlm {}",
            kind.noun()
        ));
    }
    if !bytes.starts_with(kind.magic()) {
        return Err(match kind {
            Kind::Model => "not a memlm model file (bad magic number)".into(),
            Kind::Shard => "not a memlm shard file (bad magic number)".into(),
        });
    }
    let noun = kind.noun();
    if bytes.len() < HEADER + CHECKSUM {
        return Err(format!("truncated {noun} (shorter than its header)"));
    }
    let version = u32_at(bytes, 8);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "{noun} format version {version} is not supported by this memlm (it reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
        ));
    }
    let count = u32_at(bytes, 12) as usize;
    let table_end = HEADER + count * TABLE_ENTRY;
    if count > ALL_SECTIONS.len() * 4 || table_end + CHECKSUM > bytes.len() {
        return Err(format!("truncated or corrupt {noun} (section table)"));
    }
    if checksum(&bytes[..table_end]) != u64_at(bytes, table_end) {
        return Err(format!("corrupt {noun} (header checksum mismatch)"));
    }
    let ids = ALL_SECTIONS
        .iter()
        .map(|&s| s as usize + 1)
        .max()
        .unwrap_or(0);
    let mut table = SectionTable {
        ranges: vec![None; ids],
        checksums: vec![0; ids],
    };
    for k in 0..count {
        let e = HEADER + k * TABLE_ENTRY;
        let id = u32_at(bytes, e);
        let elem = u32_at(bytes, e + 4) as usize;
        let offset = u64_at(bytes, e + 8);
        let len = u64_at(bytes, e + 16);
        let Some(section) = Section::from_id(id) else {
            return Err(format!("unknown section id {id}"));
        };
        if version < 3 && id >= FIRST_VERSION_3_SECTION {
            return Err(format!(
                "section {section:?} is not part of format version {version}"
            ));
        }
        let end = offset.saturating_add(len);
        if end > bytes.len() as u64 {
            return Err(format!(
                "truncated {noun} (section {section:?} ends past the end of the file)"
            ));
        }
        if offset % 8 != 0 || offset < (table_end + CHECKSUM) as u64 {
            return Err(format!("section {section:?} is misplaced"));
        }
        if elem != section.element_size() || len as usize % elem != 0 {
            return Err(format!("section {section:?} has a wrong element size"));
        }
        if (check == Check::Full || !section.is_bulk())
            && checksum(&bytes[offset as usize..end as usize]) != u64_at(bytes, e + 24)
        {
            return Err(format!(
                "corrupt {noun} (checksum mismatch in section {section:?})"
            ));
        }
        if table.ranges[id as usize].is_some() {
            return Err(format!("section {section:?} appears twice"));
        }
        table.ranges[id as usize] = Some(offset as usize..end as usize);
        table.checksums[id as usize] = u64_at(bytes, e + 24);
    }
    check_layout(bytes, &table, table_end + CHECKSUM, check, noun)?;
    Ok(table)
}

/// The file ends where its last section ends; with [`Check::Full`], every byte between sections is
/// zero padding.
fn check_layout(
    bytes: &[u8],
    table: &SectionTable,
    sections_start: usize,
    check: Check,
    noun: &str,
) -> std::result::Result<(), String> {
    let mut ranges: Vec<&Range<usize>> = table.ranges.iter().flatten().collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let end = ranges.last().map_or(sections_start, |r| r.end);
    if end != bytes.len() {
        return Err(format!(
            "corrupt {noun} (its length does not match its section table)"
        ));
    }
    let mut at = sections_start;
    for r in ranges {
        if r.start < at {
            return Err(format!("corrupt {noun} (sections overlap)"));
        }
        if check == Check::Full && bytes[at..r.start].iter().any(|&b| b != 0) {
            return Err(format!(
                "corrupt {noun} (padding between sections is not zero)"
            ));
        }
        at = r.end;
    }
    Ok(())
}

/// Tools for tests and fuzz targets that damage files on purpose (the `testing` feature; not part of
/// memlm's API). They read the section table as stored, with no check.
#[cfg(feature = "testing")]
pub mod testing {
    use super::{checksum, u32_at, u64_at, Range, CHECKSUM, HEADER, TABLE_ENTRY};

    /// The table entries that lie inside `bytes`: (where the entry starts, section id, the bytes
    /// it says the section holds, when those lie inside `bytes`).
    fn entries(bytes: &[u8]) -> Vec<(usize, u32, Option<Range<usize>>)> {
        if bytes.len() < HEADER {
            return Vec::new();
        }
        let count = u32_at(bytes, 12) as usize;
        (0..count)
            .map(|k| HEADER + k * TABLE_ENTRY)
            .take_while(|&e| e + TABLE_ENTRY <= bytes.len())
            .map(|e| {
                let (offset, len) = (u64_at(bytes, e + 8), u64_at(bytes, e + 16));
                let range = offset
                    .checked_add(len)
                    .filter(|&end| end <= bytes.len() as u64)
                    .map(|end| offset as usize..end as usize);
                (e, u32_at(bytes, e), range)
            })
            .collect()
    }

    /// (section id, byte range) of every section of the table of `bytes` that lies inside them.
    pub fn section_ranges(bytes: &[u8]) -> Vec<(u32, Range<usize>)> {
        entries(bytes)
            .into_iter()
            .filter_map(|(_, id, range)| Some((id, range?)))
            .collect()
    }

    /// Rewrites the checksum of every section that lies inside `bytes`, then the header checksum,
    /// so that damage done to the file passes them and reaches the structural checks. A table
    /// that does not fit in `bytes` is left as it is.
    pub fn forge_checksums(bytes: &mut [u8]) {
        if bytes.len() < HEADER {
            return;
        }
        let count = u32_at(bytes, 12) as usize;
        let Some(table_end) = count
            .checked_mul(TABLE_ENTRY)
            .and_then(|n| n.checked_add(HEADER))
            .filter(|&end| end.saturating_add(CHECKSUM) <= bytes.len())
        else {
            return;
        };
        for (e, _, range) in entries(bytes) {
            if let Some(range) = range {
                let sum = checksum(&bytes[range]);
                bytes[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
            }
        }
        let sum = checksum(&bytes[..table_end]);
        bytes[table_end..table_end + CHECKSUM].copy_from_slice(&sum.to_le_bytes());
    }
}

/// The checksum of a section or of the header: xxh3-64.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The bytes of an opened file: built in memory or read into it, or memory-mapped.
pub enum Image {
    Owned(AlignedBytes),
    Mapped(memmap2::Mmap),
}

impl Image {
    /// Memory-maps a file (read-only); anything but a regular file is refused before it is mapped.
    /// Files under 64 KiB (and files whose size the file system does not tell, or that it cannot
    /// map) are read into memory instead.
    ///
    /// The contract of every memory-mapped file (KenLM's and LMDB's alike): while the map lives,
    /// the file must not be truncated or rewritten in place. A truncated file makes a read of the
    /// lost pages kill the process (SIGBUS); bytes rewritten in place change under the reader.
    /// Replacing the file by renaming another over it is safe (the map keeps the old file), and is
    /// how memlm writes every file ([`crate::atomic`]). For files that others may rewrite in place,
    /// [`Image::read`] copies the file into memory instead.
    pub fn map(path: &std::path::Path) -> crate::Result<Image> {
        let (file, len) = open_regular(path)?;
        // Small files are read (as cheap, and no map to keep); so are files whose size the file
        // system does not tell (procfs says 0).
        if len < 1 << 16 {
            return read_all(file, len, path);
        }
        // SAFETY: the map is read-only, and the file is a regular file; that nobody truncates or
        // rewrites it in place while it is mapped is the contract documented above.
        match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => Ok(Image::Mapped(map)),
            // A file system that cannot map files: read it instead.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {
                read_all(file, len, path)
            }
            Err(e) => Err(crate::Error::io(path, e)),
        }
    }

    /// Reads a file into memory (8-byte aligned): unaffected by later changes to the file, at the
    /// cost of reading all of it and holding it in memory. Anything but a regular file is refused.
    pub fn read(path: &std::path::Path) -> crate::Result<Image> {
        let (file, len) = open_regular(path)?;
        read_all(file, len, path)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Image::Owned(b) => b.as_slice(),
            Image::Mapped(m) => m,
        }
    }
}

/// Reads an opened file of `len` bytes into an aligned buffer (at most 1 MiB when `len` is 0: a
/// file system that does not tell sizes, such as procfs).
fn read_all(mut file: std::fs::File, len: u64, path: &std::path::Path) -> crate::Result<Image> {
    use std::io::Read;
    let io = |e| crate::Error::io(path, e);
    let out_of_memory = || io(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
    if len == 0 {
        let mut bytes = Vec::new();
        file.by_ref()
            .take(1 << 20)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let mut image = AlignedBytes::try_zeroed(bytes.len()).ok_or_else(out_of_memory)?;
        image.as_mut_slice().copy_from_slice(&bytes);
        return Ok(Image::Owned(image));
    }
    let len = usize::try_from(len).map_err(|_| out_of_memory())?;
    let mut image = AlignedBytes::try_zeroed(len).ok_or_else(out_of_memory)?;
    file.read_exact(image.as_mut_slice()).map_err(io)?;
    Ok(Image::Owned(image))
}

/// Opens a file for reading if it is a regular file, with its length: opened without blocking
/// (a FIFO would wait for a writer), then refused unless `fstat` says it is a regular file.
fn open_regular(path: &std::path::Path) -> crate::Result<(std::fs::File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path).map_err(|e| crate::Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| crate::Error::io(path, e))?;
    if !meta.is_file() {
        return Err(crate::Error::not_a_regular_file(path, meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// A byte buffer whose start is 8-byte aligned, so typed arrays can be viewed in it.
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// A zero-filled buffer of `len` bytes, or None when that much memory cannot be had.
    pub fn try_zeroed(len: usize) -> Option<Self> {
        let mut words = Vec::new();
        words.try_reserve_exact(len.div_ceil(8)).ok()?;
        words.resize(len.div_ceil(8), 0);
        Some(AlignedBytes { words, len })
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> AlignedBytes {
        let params = [3u64, 4];
        let meta = b"{\"x\":1}";
        encode(
            Kind::Model,
            &[
                SectionData {
                    section: Section::Params,
                    bytes: bytemuck::cast_slice(&params),
                },
                SectionData {
                    section: Section::Metadata,
                    bytes: meta,
                },
            ],
        )
    }

    #[test]
    fn round_trip() {
        let img = image();
        let t = decode(img.as_slice(), Kind::Model, Check::Header).unwrap();
        let r = t.get(Section::Params).unwrap();
        assert_eq!(r.len(), 16);
        assert_eq!(r.start % 8, 0);
        let m = t.get(Section::Metadata).unwrap();
        assert_eq!(&img.as_slice()[m], b"{\"x\":1}");
        assert!(t.get(Section::Labels16).is_err());
    }

    #[test]
    fn every_single_byte_flip_and_truncation_is_caught() {
        let img = image();
        let good = img.as_slice().to_vec();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            assert!(
                decode(&bad, Kind::Model, Check::Full).is_err(),
                "flip at {at} not detected"
            );
        }
        for len in 0..good.len() {
            assert!(
                decode(&good[..len], Kind::Model, Check::Header).is_err(),
                "truncation to {len} not detected"
            );
        }
    }

    #[test]
    fn forged_checksums_pass_and_the_table_reads_back() {
        let img = image();
        let good = img.as_slice();
        let table = decode(good, Kind::Model, Check::Full).unwrap();
        let ranges = testing::section_ranges(good);
        assert_eq!(
            ranges,
            [Section::Params, Section::Metadata].map(|s| (s as u32, table.get(s).unwrap()))
        );
        let mut bad = good.to_vec();
        let meta = table.get(Section::Metadata).unwrap();
        bad[meta.start] ^= 0x20;
        assert!(decode(&bad, Kind::Model, Check::Full).is_err());
        testing::forge_checksums(&mut bad);
        assert!(decode(&bad, Kind::Model, Check::Full).is_ok());
        // Any bytes: never a panic.
        for len in 0..good.len() {
            testing::forge_checksums(&mut good[..len].to_vec());
        }
        let mut huge_count = good.to_vec();
        huge_count[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        testing::forge_checksums(&mut huge_count);
        testing::section_ranges(&huge_count);
    }

    #[test]
    fn duplicate_sections_are_refused() {
        let params = [3u64, 4];
        let twice = [Section::Params, Section::Params].map(|section| SectionData {
            section,
            bytes: bytemuck::cast_slice(&params),
        });
        let err = decode(
            encode(Kind::Model, &twice).as_slice(),
            Kind::Model,
            Check::Header,
        )
        .unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn version_2_is_read_without_the_kneser_ney_sections() {
        let as_version_2 = |img: AlignedBytes| {
            let mut old = img.as_slice().to_vec();
            old[8] = 2;
            let table_end = HEADER + u32_at(&old, 12) as usize * TABLE_ENTRY;
            let sum = checksum(&old[..table_end]);
            old[table_end..table_end + CHECKSUM].copy_from_slice(&sum.to_le_bytes());
            old
        };
        assert!(decode(&as_version_2(image()), Kind::Model, Check::Full).is_ok());
        let kn_params = [3u64, 4];
        let with_kn = encode(
            Kind::Model,
            &[SectionData {
                section: Section::KnParams,
                bytes: bytemuck::cast_slice(&kn_params),
            }],
        );
        let err = decode(&as_version_2(with_kn), Kind::Model, Check::Header).unwrap_err();
        assert!(
            err.contains("KnParams is not part of format version 2"),
            "{err}"
        );
    }

    #[test]
    fn other_version_is_named() {
        let mut bad = image().as_slice().to_vec();
        bad[8] = 9;
        let err = decode(&bad, Kind::Model, Check::Header).unwrap_err();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn a_shard_is_not_a_model_and_says_so() {
        let img = image();
        let err = decode(img.as_slice(), Kind::Shard, Check::Header).unwrap_err();
        assert!(err.contains("a memlm model, not a shard"), "{err}");
        let mut shard = img.as_slice().to_vec();
        shard[..8].copy_from_slice(SHARD_MAGIC);
        let err = decode(&shard, Kind::Model, Check::Header).unwrap_err();
        assert!(err.contains("memlm merge"), "{err}");
    }
}
