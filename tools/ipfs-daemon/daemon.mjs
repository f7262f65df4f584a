// js-ipfs's daemon, started as `jsipfs daemon --init-profile test --init-config FILE --enable-preload=false`
// starts it, with one change: libp2p's Noise channel encryption runs ChaCha20-Poly1305 on Node's own
// crypto (OpenSSL) instead of @chainsafe/libp2p-noise's pure-JS default (stablelib), which is about 20x
// slower here and bounded every transfer between two nodes to a few MB/s. The protocol on the wire is
// the same Noise XX handshake and cipher, so these nodes still speak to any libp2p peer (Kubo included).
//
// Usage (IPFS_PATH set): node daemon.mjs INIT-CONFIG.json
import crypto from 'node:crypto'
import fs from 'node:fs'
import { noise, stablelib } from '@chainsafe/libp2p-noise'
import { Daemon } from 'ipfs-daemon'
import { createLibp2p } from 'libp2p'

const TAG = 16

const nativeChaCha = {
  ...stablelib,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, key) {
    const cipher = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG })
    cipher.setAAD(ad, { plaintextLength: plaintext.length })
    const head = cipher.update(plaintext)
    const tail = cipher.final()
    const sealed = Buffer.concat([head, tail, cipher.getAuthTag()])
    return new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.length)
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, key) {
    if (ciphertext.length < TAG) return null
    const body = ciphertext.subarray(0, ciphertext.length - TAG)
    const decipher = crypto.createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG })
    decipher.setAAD(ad, { plaintextLength: body.length })
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG))
    try {
      const plain = Buffer.concat([decipher.update(body), decipher.final()])
      return new Uint8Array(plain.buffer, plain.byteOffset, plain.length)
    } catch {
      return null // authentication failed: what stablelib answers too
    }
  }
}

async function libp2p ({ libp2pOptions }) {
  libp2pOptions.connectionEncryption = [noise({ crypto: nativeChaCha })]
  return createLibp2p(libp2pOptions)
}

// js-ipfs 0.66 leaves a request's aborted bitswap want as an unhandled rejection (e.g. a `cat` whose client
// went away): `jsipfs daemon` exits on it; a site's node should log it and go on serving.
process.on('unhandledRejection', (error) => console.error('unhandled rejection, ignored:', error?.message ?? error))

const daemon = new Daemon({
  config: JSON.parse(fs.readFileSync(process.argv[2], 'utf8')),
  repo: process.env.IPFS_PATH,
  preload: { enabled: false },
  init: { profiles: ['test'] },
  libp2p
})
await daemon.start()
for (const server of daemon._httpApi?._apiServers ?? []) console.log(`HTTP API listening on ${server.info.ma}`)
console.log('Daemon is ready')

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  console.log('Received interrupt signal, shutting down...')
  await daemon.stop()
  process.exit(0)
}
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, stop)
