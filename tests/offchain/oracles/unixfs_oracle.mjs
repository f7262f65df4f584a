// npm's ipfs-unixfs-importer as a CID oracle, with Kubo's import options.
// Usage: node unixfs_oracle.mjs CID_VERSION FILE...  -> one CID a line.
// CID version 1 means raw leaves (Kubo's --cid-version=1); 0 means dag-pb
// leaves holding UnixFS `file` nodes (Kubo's default).
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// Hashes and keeps nothing: only the CIDs are wanted.
const discard = { put: async (cid) => cid }

const [version, ...files] = process.argv.slice(2)
const cidVersion = Number(version)
if (cidVersion !== 0 && cidVersion !== 1) throw new Error(`CID version must be 0 or 1, got ${version}`)

for (const file of files) {
  const options = {
    cidVersion,
    rawLeaves: cidVersion === 1,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  }
  let root
  for await (const entry of importer([{ content: createReadStream(file) }], discard, options)) root = entry
  console.log(root.cid.toString())
}
