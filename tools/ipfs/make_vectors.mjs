// Reference CID vectors for LedgerML's Python CID code, made by the real js IPFS
// importer (ipfs-unixfs-importer, pinned in package-lock.json) with the settings
// `ipfs add --cid-version 1` uses: CIDv1, raw leaves, fixed 262,144-byte chunks,
// balanced layout with at most 174 links per node, single leaf reduced to itself.
//
// Files come from a seeded PRNG that tests/storage/test_cid.py re-implements:
//   "sha256-counter": bytes = SHA-256(utf8(seed) || uint64_be(0)) || SHA-256(seed || uint64_be(1)) || ...
//   truncated to `size` bytes.
// Extra vectors with tiny chunks and fan-out exercise three and more tree levels
// without gigabytes of data.
//
// Usage: node make_vectors.mjs [OUT]   (default ../../tests/vectors/cid_vectors.json)

import { createHash } from 'node:crypto'
import { writeFileSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'

const here = dirname(fileURLToPath(import.meta.url))
const out = resolve(process.argv[2] ?? resolve(here, '../../tests/vectors/cid_vectors.json'))

const KiB = 1024
const MiB = 1024 * KiB
const CHUNK = 262_144

// Pieces of 1 MiB so the importer sees a stream, never the whole file at once.
function * sha256Counter (seed, size) {
  const seedBytes = Buffer.from(seed, 'utf8')
  const piece = Buffer.alloc(MiB)
  let counter = 0n
  let produced = 0
  while (produced < size) {
    const want = Math.min(MiB, size - produced)
    let filled = 0
    while (filled < want) {
      const ctr = Buffer.alloc(8)
      ctr.writeBigUInt64BE(counter++)
      const digest = createHash('sha256').update(seedBytes).update(ctr).digest()
      const n = Math.min(32, want - filled)
      digest.copy(piece, filled, 0, n)
      filled += n
    }
    produced += want
    yield Uint8Array.from(piece.subarray(0, want))
  }
}

async function cidOf (seed, size, chunkSize, maxLinks) {
  const entries = importer([{ content: sha256Counter(seed, size) }], new BlackHoleBlockstore(), {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks })
  })
  let last
  for await (const entry of entries) last = entry
  return { cid: last.cid.toString(), dagSize: Number(last.size) }
}

const cases = [
  ['empty', 0],
  ['one-byte', 1],
  ['chunk-minus-1', CHUNK - 1],
  ['chunk', CHUNK],
  ['chunk-plus-1', CHUNK + 1],
  ['two-chunks', 2 * CHUNK],
  ['ten-mib', 10 * MiB],
  ['full-node-174', 174 * CHUNK],
  ['node-174-plus-1', 174 * CHUNK + 1],
  ['two-levels-48mb', 48_000_000]
]
// Small geometry: 1 KiB chunks, 3 links per node -> 3 to 5 levels.
const small = [
  ['small-3-levels', 9 * KiB],
  ['small-3-levels-plus', 9 * KiB + 1],
  ['small-4-levels', 27 * KiB + 500],
  ['small-5-levels', 100 * KiB + 7]
]

const vectors = []
for (const [name, size] of cases) {
  const seed = `ledgerml-cid-vector:${name}`
  const { cid, dagSize } = await cidOf(seed, size, CHUNK, 174)
  vectors.push({ name, size, chunk_size: CHUNK, max_links: 174, generator: { prng: 'sha256-counter', seed }, cid, dag_size: dagSize })
  console.error(`${name.padEnd(20)} ${String(size).padStart(10)}  ${cid}`)
}
for (const [name, size] of small) {
  const seed = `ledgerml-cid-vector:${name}`
  const { cid, dagSize } = await cidOf(seed, size, 1024, 3)
  vectors.push({ name, size, chunk_size: 1024, max_links: 3, generator: { prng: 'sha256-counter', seed }, cid, dag_size: dagSize })
  console.error(`${name.padEnd(20)} ${String(size).padStart(10)}  ${cid}`)
}

const doc = {
  comment: 'Made by tools/ipfs/make_vectors.mjs with the pinned ipfs-unixfs-importer; do not edit by hand.',
  importer: 'ipfs-unixfs-importer',
  importer_version: JSON.parse((await import('node:fs')).readFileSync(resolve(here, 'node_modules/ipfs-unixfs-importer/package.json'), 'utf8')).version,
  prng: {
    'sha256-counter': 'SHA-256(utf8(seed) || uint64_be(i)) for i = 0, 1, 2, ... concatenated, truncated to size'
  },
  vectors
}
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, JSON.stringify(doc, null, 2) + '\n')
console.error(`wrote ${out}`)
